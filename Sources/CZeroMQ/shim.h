#include <zmq.h>
#include <sys/eventfd.h>
/* malloc_trim: the coordinator returns freed arena memory after big submits. Glibc's
   Swift module does not export <malloc.h>, and this is the package's one C shim. */
#include <malloc.h>
