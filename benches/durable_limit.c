/* The disk's limit for durable Maildir delivery, without mailwire: W writer threads, each
 * doing only the durable work of one delivery per file, as src/store/maildir.rs does it:
 *   open(new/, O_TMPFILE) -> write SIZE bytes -> fsync(file) -> linkat into new/ under a
 *   unique name -> fsync(new/)
 * (one folder fsync per file: no group commit). benches/durable.sh compiles it with cc and
 * runs it interleaved with `mailwire serve` on the same folder.
 *
 * usage: durable_limit DIR WRITERS FILES SIZE
 * prints: RESULT files=N seconds=S rate=R errors=E
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *dir;
static long files_per_writer, size;
static char *content;
static long errors;
static pthread_mutex_t errors_lock = PTHREAD_MUTEX_INITIALIZER;

static void fail(const char *what) {
    pthread_mutex_lock(&errors_lock);
    if (errors++ < 5) fprintf(stderr, "durable_limit: %s: %s\n", what, strerror(errno));
    pthread_mutex_unlock(&errors_lock);
}

static void *writer(void *arg) {
    long w = (long)arg;
    char from[64], to[4096];
    for (long i = 0; i < files_per_writer; i++) {
        int fd = open(dir, O_TMPFILE | O_WRONLY, 0600);
        if (fd < 0) { fail("open O_TMPFILE"); continue; }
        long done = 0;
        while (done < size) {
            ssize_t n = write(fd, content + done, size - done);
            if (n <= 0) { fail("write"); break; }
            done += n;
        }
        if (fsync(fd) != 0) fail("fsync file");
        snprintf(from, sizeof from, "/proc/self/fd/%d", fd);
        snprintf(to, sizeof to, "%s/limit.%ld.P%dT%ldN%ld,S=%ld", dir, (long)time(NULL), (int)getpid(), w, i, size);
        if (linkat(AT_FDCWD, from, AT_FDCWD, to, AT_SYMLINK_FOLLOW) != 0) fail("linkat");
        close(fd);
        int dfd = open(dir, O_RDONLY | O_DIRECTORY);
        if (dfd < 0) { fail("open folder"); continue; }
        if (fsync(dfd) != 0) fail("fsync folder");
        close(dfd);
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: durable_limit DIR WRITERS FILES SIZE\n");
        return 2;
    }
    dir = argv[1];
    long writers = atol(argv[2]), files = atol(argv[3]);
    size = atol(argv[4]);
    if (writers < 1 || writers > 1000 || files < writers || size < 1) {
        fprintf(stderr, "durable_limit: bad arguments\n");
        return 2;
    }
    files_per_writer = files / writers;
    content = malloc(size);
    if (!content) return 1;
    for (long i = 0; i < size; i++) content[i] = (i % 78 == 77) ? '\n' : 'a' + i % 26;
    pthread_t *t = calloc(writers, sizeof *t);
    if (!t) return 1;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long w = 0; w < writers; w++)
        if (pthread_create(&t[w], NULL, writer, (void *)w) != 0) { perror("pthread_create"); return 1; }
    for (long w = 0; w < writers; w++) pthread_join(t[w], NULL);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
    long n = files_per_writer * writers;
    printf("RESULT files=%ld seconds=%.3f rate=%.1f errors=%ld\n", n, secs, n / secs, errors);
    return errors ? 1 : 0;
}
