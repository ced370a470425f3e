/* macro.h -- small macros and inline helpers any daemon file may use.
 *
 * Kept to what the C library lacks and more than one file needs; each macro
 * is an expression with no side effect beyond its arguments'. */
#ifndef MCD_MACRO_H
#define MCD_MACRO_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The number of elements of an array (not of a pointer: the compiler cannot
 * tell, so use it only on arrays declared as such). */
#define ELEMENTSOF(a) (sizeof(a) / sizeof((a)[0]))

/* calloc for the arrays a batch makes anew each time: malloc and memset.
 * jemalloc's calloc zeroes a large block (16 KiB and more) it reuses by
 * handing its pages back to the kernel (madvise MADV_DONTNEED: a TLB
 * shootdown on every core) and faulting each in again at its first touch;
 * memset reuses them as they are (README, Benchmark).  NULL when out of
 * memory or when n * size overflows. */
static inline void *zalloc_array(size_t n, size_t size) {
        size_t bytes;
        void *p;

        if (size && n > SIZE_MAX / size)
                return NULL;
        bytes = n * size;
        p = malloc(bytes > 0 ? bytes : 1);
        if (p)
                memset(p, 0, bytes);
        return p;
}

/* An array its maker fills before reading any element: malloc, n * size
 * checked for overflow (NULL then, as when out of memory). */
static inline void *alloc_array(size_t n, size_t size) {
        if (size && n > SIZE_MAX / size)
                return NULL;
        return malloc(n * size > 0 ? n * size : 1);
}

#endif
