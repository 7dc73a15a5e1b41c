// The process-per-job floor for bench/dispatch.sh: the same N trivial commands
// (`echo job I`) started by one loop in C, P at a time, each as a pinpool job's command
// is (posix_spawn in a new session, stdout and stderr through a pipe read to its end,
// the status reaped). No scheduling, no workspace, no log kept: what starting a process
// per job costs this machine, so a dispatch rate can be read against what it allows.
// Usage: spawn-floor N P
#define _GNU_SOURCE
#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double ms(struct timeval user, struct timeval sys) {
  return (user.tv_sec + sys.tv_sec) * 1e3 + (user.tv_usec + sys.tv_usec) / 1e3;
}

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 1000;
  int p = argc > 2 ? atoi(argv[2]) : 32;
  if (n < 1 || p < 1 || p > 1024) {
    fprintf(stderr, "usage: spawn-floor N P (1 <= P <= 1024)\n");
    return 2;
  }
  // A job's environment has these (and a few paths more).
  char *env[] = {"LANG=C.UTF-8", "PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/tmp", NULL};
  struct pollfd fds[1024];
  pid_t pids[1024];
  int active = 0, started = 0, done = 0, failed = 0;
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  while (done < n) {
    while (active < p && started < n) {
      int fd[2];
      if (pipe2(fd, O_CLOEXEC) != 0) { perror("pipe2"); return 1; }
      posix_spawn_file_actions_t actions;
      posix_spawn_file_actions_init(&actions);
      posix_spawn_file_actions_adddup2(&actions, fd[1], 1);
      posix_spawn_file_actions_adddup2(&actions, fd[1], 2);
      posix_spawnattr_t attributes;
      posix_spawnattr_init(&attributes);
      posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSID);
      char index[16];
      snprintf(index, sizeof index, "%d", started + 1);
      char *args[] = {"echo", "job", index, NULL};
      pid_t pid;
      int rc = posix_spawn(&pid, "/bin/echo", &actions, &attributes, args, env);
      posix_spawn_file_actions_destroy(&actions);
      posix_spawnattr_destroy(&attributes);
      close(fd[1]);
      if (rc != 0) { fprintf(stderr, "posix_spawn: error %d\n", rc); return 1; }
      fds[active] = (struct pollfd){.fd = fd[0], .events = POLLIN};
      pids[active] = pid;
      active++;
      started++;
    }
    if (poll(fds, active, -1) < 0) { perror("poll"); return 1; }
    for (int i = 0; i < active; i++) {
      if (!fds[i].revents) continue;
      char buffer[4096];
      if (read(fds[i].fd, buffer, sizeof buffer) > 0) continue;
      close(fds[i].fd);
      int status;
      waitpid(pids[i], &status, 0);
      if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) failed++;
      done++;
      active--;
      fds[i] = fds[active];
      pids[i] = pids[active];
      i--;
    }
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double seconds = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
  struct rusage self, children;
  getrusage(RUSAGE_SELF, &self);
  getrusage(RUSAGE_CHILDREN, &children);
  printf("spawn-floor N=%d parallel=%d failed=%d total_s=%.2f jobs_per_s=%.1f launcher_ms_per_job=%.3f "
         "commands_ms_per_job=%.3f\n",
         n, p, failed, seconds, n / seconds, ms(self.ru_utime, self.ru_stime) / n,
         ms(children.ru_utime, children.ru_stime) / n);
  return failed ? 1 : 0;
}
