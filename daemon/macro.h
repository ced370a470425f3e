/* macro.h -- small macros any daemon file may use.
 *
 * Kept to what the C library lacks and more than one file needs; each is an
 * expression with no side effect beyond its arguments'. */
#ifndef MCD_MACRO_H
#define MCD_MACRO_H

/* The number of elements of an array (not of a pointer: the compiler cannot
 * tell, so use it only on arrays declared as such). */
#define ELEMENTSOF(a) (sizeof(a) / sizeof((a)[0]))

#endif
