#include <zmq.h>
#include <sys/eventfd.h>
/* malloc_trim: the coordinator returns freed arena memory after big submits. Glibc's
   Swift module does not export <malloc.h>; both daemons have this module already. */
#include <malloc.h>
