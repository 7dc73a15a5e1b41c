/* What the worker's sandbox needs from libc that Glibc's Swift module does not export:
   extended attributes (an ACL is one), checked before an emptied workspace is reused. */
#include <sys/xattr.h>
