#ifndef FLOWFOREST_HEAP_STATISTICS_H
#define FLOWFOREST_HEAP_STATISTICS_H
#include <stddef.h>

/* Bytes the C heap has handed out and not taken back (glibc mallinfo2's
 * uordblks: small blocks and mmapped ones alike), for measurements of what
 * a data structure costs. 0 where glibc is not the allocator. */
size_t ff_heap_bytes_in_use(void);

#endif
