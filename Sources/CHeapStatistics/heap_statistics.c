#include "heap_statistics.h"
#ifdef __linux__
#include <features.h>
#endif

#ifdef __GLIBC__
#include <malloc.h>
#endif

#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
size_t ff_heap_bytes_in_use(void)
{
    /* mallinfo2 is not in Swift's Glibc module (malloc.h is not part of it). */
    struct mallinfo2 m = mallinfo2();
    return m.uordblks + m.hblkhd;
}
#else
size_t ff_heap_bytes_in_use(void) { return 0; }
#endif

#ifdef __GLIBC__
int ff_heap_trim(void) { return malloc_trim(0); }
#else
int ff_heap_trim(void) { return 0; }
#endif
