#ifndef FLOWFOREST_HEAP_STATISTICS_H
#define FLOWFOREST_HEAP_STATISTICS_H
#include <stddef.h>

/* Bytes the C heap has handed out and not taken back (glibc mallinfo2's
 * uordblks: small blocks and mmapped ones alike), for measurements of what
 * a data structure costs. 0 where glibc is not the allocator. */
size_t ff_heap_bytes_in_use(void);

/* Gives the kernel back the free pages of every malloc arena (malloc_trim):
 * glibc returns freed memory only from the top of a heap by itself. Returns
 * 1 when some memory was released. */
int ff_heap_trim(void);

#endif
