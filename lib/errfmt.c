#include "errfmt.h"

#include <stdio.h>
#include <string.h>

void err_fill(char *err, size_t errlen, const char *call, const char *object,
              int errnum)
{
    if (err == NULL || errlen == 0)
        return;
    if (object != NULL)
        snprintf(err, errlen, "%s(%s): %s", call, object, strerror(errnum));
    else
        snprintf(err, errlen, "%s: %s", call, strerror(errnum));
}
