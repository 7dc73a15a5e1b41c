/* What the worker's sandbox and executor need from libc that Glibc's Swift module does
   not export: extended attributes (an ACL is one), checked before an emptied workspace
   is reused, and pipe2(2), which Glibc's module hides behind _GNU_SOURCE. */
#include <sys/xattr.h>

/* Declared here as glibc (2.9 and later) declares it under _GNU_SOURCE. */
extern int pipe2(int pipefd[2], int flags);
