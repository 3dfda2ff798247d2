/* The syscall floor, a baseline of bench/fleet.sh (adapted from the shared baselines,
 * peers/floor.c: same work, plus argument and error checks).
 * floor DIR [REPEATS]: for every file in DIR whose name ends in .sqlite, one thread: stat db, -wal, -shm; open,
 * pread 100 bytes (the header), close. Prints one line per repeat:
 *   floor n=N total_us=T us_per_db=U
 * Build: cc -O2 -o floor floor.c */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc < 2) { fprintf(stderr, "usage: floor DIR [REPEATS]\n"); return 2; }
  const char *dir = argv[1]; int reps = argc > 2 ? atoi(argv[2]) : 1;
  DIR *d = opendir(dir); struct dirent *e; char **names = NULL; int n = 0, cap = 0;
  if (!d) { perror(dir); return 2; }
  while ((e = readdir(d))) { size_t l = strlen(e->d_name);
    if (l > 7 && strcmp(e->d_name + l - 7, ".sqlite") == 0) {
      if (n == cap) { cap = cap ? cap * 2 : 1024; names = realloc(names, cap * sizeof *names); }
      names[n] = malloc(strlen(dir) + l + 2); sprintf(names[n], "%s/%s", dir, e->d_name); n++; } }
  closedir(d);
  if (n == 0) { fprintf(stderr, "floor: no *.sqlite files in %s\n", dir); return 2; }
  char p[4096], buf[100]; struct stat st; long sum = 0;
  for (int r = 0; r < reps; r++) {
    struct timespec a, b; clock_gettime(CLOCK_MONOTONIC, &a);
    for (int i = 0; i < n; i++) {
      stat(names[i], &st); sum += st.st_size;
      snprintf(p, sizeof p, "%s-wal", names[i]); if (stat(p, &st) == 0) sum += st.st_size;
      snprintf(p, sizeof p, "%s-shm", names[i]); if (stat(p, &st) == 0) sum += st.st_size;
      int fd = open(names[i], O_RDONLY); if (fd >= 0) { sum += pread(fd, buf, 100, 0); close(fd); }
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    double us = (b.tv_sec - a.tv_sec) * 1e6 + (b.tv_nsec - a.tv_nsec) / 1e3;
    printf("floor n=%d total_us=%.0f us_per_db=%.3f\n", n, us, us / n);
  }
  return sum == 42; /* keeps the work observable */
}
