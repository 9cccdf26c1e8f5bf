/* Error text for library code that must not exit: "call(object): strerror". */
#ifndef FL_ERRFMT_H
#define FL_ERRFMT_H

#include <stddef.h>

/* Size of the error buffers that lib/ functions fill. */
#define FL_ERRLEN 256

/* Fill err with "call(object): strerror(errnum)"; object may be NULL. */
void err_fill(char *err, size_t errlen, const char *call, const char *object,
              int errnum);

#endif
