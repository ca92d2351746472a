/*
 * rtpload — a lean RTP load generator and one-way latency meter for the hushpay media bench.
 *
 * It plays both ends of N/2 calls over loopback: streams 0..N/2-1 are "callers", streams
 * N/2..N-1 are "agents", and caller i is paired with agent N/2+i.  Every stream that is given a
 * remote sends one G.711 μ-law (PCMU) RTP packet per packet period to it, and every stream
 * receives whatever comes back.  Each packet carries a marker in its payload (the sender's
 * stream index and packet counter), so a packet relayed through the system under test can be
 * matched with its send time even though the relay rewrites SSRC, sequence and timestamp.
 * Arrival times are the kernel's receive timestamps (SO_TIMESTAMPNS), so this program's own
 * scheduling delays do not show up in the latencies it reports.
 *
 * Build:   gcc -O2 -Wall -Wextra -o rtpload rtpload.c        (C99/C11, glibc, Linux only)
 * Run:     taskset -c 1 ./rtpload --streams N --warmup-ms W --measure-ms M
 *                                  [--tail-ms T (200)] [--payload FILE] [--packet-samples 160]
 *                                  [--send-quantum-us Q (500)]
 *
 * Protocol (stdin/stdout, one line each; anything diagnostic goes to stderr):
 *   1. stdout: {"ports":[p0,p1,...,pN-1]}   the local UDP port of each stream (127.0.0.1).
 *   2. stdin:  "<index> <remotePort>"       stream <index> connect()s to 127.0.0.1:<remotePort>
 *                                           and will send there.  One line per stream at most.
 *              "go"                         starts the run; stdin is not read after this.
 *      Blank lines are ignored.  Any other line, an index out of range, a port outside
 *      1..65535, a stream wired twice, or stdin closing before "go": message on stderr, exit 2.
 *      Streams never wired do not send, but still receive.
 *      Note: the socket is connect()ed, so the kernel only delivers datagrams to it that come
 *      from that same remote address and port (symmetric RTP, as hushpay's relay does).
 *   3. Sending starts 50 ms after "go" (t0).  Stream k is scheduled at t0 + k*P/N + j*P for
 *      j = 0,1,.. (P = packet-samples/8 ms, 20 ms by default) until t0 + W + M + T; after that
 *      it only receives for 300 ms more, then reports.  Packets whose scheduled time lies in
 *      the measure window [t0+W, t0+W+M) are "measured": their actual send time
 *      (CLOCK_REALTIME right before send()) is recorded.
 *      The loop sleeps (clock_nanosleep, absolute CLOCK_MONOTONIC) until the next send, sends
 *      everything due, then reads every socket epoll reports ready (polled, timeout 0).  It
 *      does not wake for arrivals (the kernel timestamps them), and it wakes on a grid of
 *      Q µs from t0: the sends scheduled within one Q go out together at the grid point, up
 *      to Q late, each stream still exactly periodic.  A wakeup is the dearest thing the loop
 *      does (~30 µs of CPU in a VM), so Q = 0 (every send at its own time) costs roughly twice
 *      the CPU at N = 1000; Q = 500 makes bursts of N*Q/P packets (25 at N = 1000).
 *      Packet: RTP header V=2, PT=0, random SSRC, seq +1 and timestamp +packet-samples per
 *      packet from random starts, then packet-samples payload bytes: from FILE (raw μ-law,
 *      cycled, a different offset per stream) or 0xFF.  Payload bytes 0..3 = sender stream
 *      index, bytes 4..7 = sender packet counter (both big-endian uint32, the counter from 0).
 *   4. A received packet is matched by that marker (packet bytes 12..19); latency =
 *      kernel receive timestamp - recorded send time.  Direction is that of the sender:
 *      callerToAgent if the sender is a caller stream, agentToCaller otherwise.
 *   5. stdout: one JSON line, then exit 0:
 *      {"callerToAgent":{"sent":S,"matched":n,"lost":L,"duplicates":D,"stale":n,
 *                        "p50Ms":x,"p99Ms":x,"p999Ms":x,"maxMs":x,"addedJitterP99Ms":x},
 *       "agentToCaller":{...},"lateSends":n,"maxSendLagMs":x,"foreign":n,"wrongReceiver":n,
 *       "noKernelTimestamp":n,"refused":n,"sendDropped":n,"cpuPct":x,"loopSends":n,
 *       "loopWakeups":n}
 *      sent = measured packets sent by that direction's senders; lost = sent - matched;
 *      duplicates = measured packets that arrived again after being matched; stale = packets
 *      that arrived after their send record was recycled (more than RING_SIZE packets later,
 *      about 10 s at 20 ms; they count as lost).  Percentiles are nearest-rank over the
 *      matched latencies, in ms; addedJitterP99Ms = p99 of |latency - median latency|.  They
 *      are null when nothing was matched.  lateSends = sends (whole run) more than 5 ms after
 *      their scheduled time (still sent, with their real time); maxSendLagMs = the worst such
 *      lag (it includes up to Q of grouping).  foreign (whole run) = packets under 20 bytes,
 *      with an out-of-range sender index, or with a counter the sender has not sent yet.
 *      wrongReceiver = warmup/measured/tail packets recognised by their marker that reached
 *      a stream other than the sender's partner (still measured).  refused = ECONNREFUSED
 *      reports on any socket (the peer port was not open; a send that gets one is retried
 *      once, so it counts reports, not lost packets).  sendDropped = sends refused with
 *      EAGAIN (socket buffer full; such a packet is lost).  cpuPct = 100 *
 *      (user+sys CPU) / wall time over the measure window.  loopSends = all packets sent in
 *      the whole run; loopWakeups = event-loop iterations in the whole run.
 *   Exit 1 (message on stderr) on any unexpected socket/system error.
 *
 * Note for the hushpay bench: hushpay delays caller->agent audio by one packet, so that
 * direction's latencies include that 20 ms; the tail T keeps streams sending long enough to
 * push the last measured packet out of the delay line.
 */

#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/types.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>

#define NS_PER_MS 1000000LL
#define NS_PER_S 1000000000LL

#define MAX_STREAMS 20000
#define MAX_WINDOW_MS 600000LL        /* cap on warmup, measure and tail (10 min each) */
#define MIN_SAMPLES 8                 /* the payload marker needs 8 bytes */
#define MAX_SAMPLES 1600              /* 200 ms of 8 kHz audio */
#define RTP_HEADER 12
#define MARKER_BYTES 8
#define START_DELAY_NS (50 * NS_PER_MS)
#define DRAIN_NS (300 * NS_PER_MS)
#define LATE_NS (5 * NS_PER_MS)
#define RCVBUF_BYTES (256 * 1024)
#define TIMER_SLACK_NS 50000          /* the kernel default; set so a parent's value is not inherited */
#define RING_SIZE 512                 /* send records kept per stream (~10 s at 20 ms) */
#define RECV_BATCH 8                  /* datagrams per recvmmsg() */
#define RECV_BUF_BYTES 256            /* only the first 20 bytes matter; longer packets are truncated */
#define MAX_EVENTS 256
#define MAX_SLEEP_NS (20 * NS_PER_MS)   /* read the sockets at least this often */
#define DEFAULT_QUANTUM_US 500
#define MAX_QUANTUM_US 2000

enum record_state { REC_UNTRACKED = 0, REC_PENDING = 1, REC_MATCHED = 2 };

/* What was sent with a given counter; the slot is counter % RING_SIZE. */
typedef struct {
    int64_t send_ns;   /* CLOCK_REALTIME before send(), measured packets only */
    uint32_t counter;
    uint32_t state;    /* enum record_state */
} send_record;

typedef struct {
    int fd;
    uint16_t local_port;
    uint16_t remote_port;  /* 0: never wired, does not send */
    uint32_t ssrc;
    uint16_t seq;
    uint32_t timestamp;
    uint32_t counter;      /* next packet counter; also the number of packets sent */
    size_t payload_pos;    /* offset into the payload file */
    send_record *ring;
} stream;

typedef struct {
    uint64_t sent, matched, duplicates, stale;
    float *latency_ms;     /* matched latencies, capacity `cap` */
    size_t cap;
} direction;

typedef struct {
    uint32_t streams;
    int64_t warmup_ms, measure_ms, tail_ms;
    const char *payload_file;
    uint32_t packet_samples;
    int64_t quantum_us;
} options;

typedef struct {
    options opt;
    stream *streams;
    send_record *rings;         /* RING_SIZE records per stream, one block */
    uint32_t half;              /* N/2: index of the first agent stream */
    int epoll_fd;
    int64_t period_ns;

    uint8_t *payload;           /* file bytes, extended so any packet is one memcpy; NULL: 0xFF */
    size_t payload_len;         /* file length (the cycle length) */
    uint8_t packet[RTP_HEADER + MAX_SAMPLES];
    size_t packet_len;

    uint32_t *active;           /* indices of the streams that send, ascending */
    uint32_t active_count;

    /* Schedule, CLOCK_MONOTONIC ns. */
    int64_t t0, measure_start, measure_end, send_end, finish;

    direction dir[2];           /* 0: callerToAgent, 1: agentToCaller */

    uint64_t late_sends, foreign, wrong_receiver, no_kernel_ts, refused, send_dropped;
    uint64_t loop_sends, loop_wakeups;
    int64_t max_send_lag_ns;

    /* CPU over the measure window. */
    int cpu_started, cpu_ended;
    int64_t cpu_wall_start, cpu_wall_end;
    int64_t cpu_used_start, cpu_used_end;

    int64_t quantum_ns;         /* sends are grouped on this grid (0: each at its own time) */

    /* Receive buffers for recvmmsg. */
    struct mmsghdr msgs[RECV_BATCH];
    struct iovec iovs[RECV_BATCH];
    uint8_t bufs[RECV_BATCH][RECV_BUF_BYTES];
    union {
        char buf[CMSG_SPACE(sizeof(struct timespec)) * 2];
        size_t align;           /* cmsghdr alignment */
    } ctrl[RECV_BATCH];
} run_state;

/* ------------------------------------------------------------------------------------------ */
/* Errors                                                                                     */

static void fail_usage(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
static void fail_system(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

/* Bad arguments or a malformed stdin line: exit 2. */
static void fail_usage(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("rtpload: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

/* An unexpected system or socket error: exit 1.  The message should include strerror(errno). */
static void fail_system(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("rtpload: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static void *xcalloc(size_t count, size_t size, const char *what)
{
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p) fail_system("out of memory allocating %s (%zu x %zu bytes)", what, count, size);
    return p;
}

/* Zeroed memory whose pages are already faulted in (calloc may hand out untouched pages; the
 * volatile pointer keeps the compiler from turning malloc+memset back into calloc). */
static void *xalloc_touched(size_t count, size_t size, const char *what)
{
    static void *(*volatile zero_fill)(void *, int, size_t) = memset;
    if (count && size > SIZE_MAX / count) fail_system("%s is too large", what);
    size_t bytes = count * size;
    if (bytes == 0) bytes = 1;
    void *p = malloc(bytes);
    if (!p) fail_system("out of memory allocating %s (%zu bytes)", what, bytes);
    zero_fill(p, 0, bytes);
    return p;
}

/* ------------------------------------------------------------------------------------------ */
/* Small helpers                                                                              */

static int64_t clock_ns(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (int64_t)ts.tv_sec * NS_PER_S + ts.tv_nsec;
}

static int64_t mono_ns(void) { return clock_ns(CLOCK_MONOTONIC); }
static int64_t real_ns(void) { return clock_ns(CLOCK_REALTIME); }

static int64_t cpu_used_ns(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) fail_system("getrusage: %s", strerror(errno));
    return ((int64_t)ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * NS_PER_S +
           ((int64_t)ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000;
}

static void put_u16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }

static void put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* splitmix64: plenty for SSRCs and random starts. */
static uint64_t random_u64(void)
{
    static uint64_t state;
    if (!state) state = (uint64_t)real_ns() ^ ((uint64_t)getpid() << 32) ^ 0x9E3779B97F4A7C15ULL;
    uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* Parses a whole decimal string into [min, max]; returns 0 on anything else. */
static int parse_int(const char *s, long long min, long long max, long long *out)
{
    if (!s || *s < '0' || *s > '9') return 0;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v < (unsigned long long)min || v > (unsigned long long)max) return 0;
    *out = (long long)v;
    return 1;
}

/* ------------------------------------------------------------------------------------------ */
/* Options                                                                                    */

static void usage_and_exit(const char *why)
{
    fail_usage("%s\nusage: rtpload --streams N --warmup-ms W --measure-ms M [--tail-ms T (200)] "
               "[--payload FILE] [--packet-samples 160] [--send-quantum-us 500]", why);
}

static long long option_value(int argc, char **argv, int *i, long long min, long long max)
{
    const char *name = argv[*i];
    if (*i + 1 >= argc) fail_usage("%s needs a value", name);
    long long v;
    if (!parse_int(argv[++*i], min, max, &v))
        fail_usage("%s: '%s' is not a whole number in %lld..%lld", name, argv[*i], min, max);
    return v;
}

static options parse_options(int argc, char **argv)
{
    options o = { .streams = 0, .warmup_ms = -1, .measure_ms = -1, .tail_ms = 200,
                  .payload_file = NULL, .packet_samples = 160, .quantum_us = DEFAULT_QUANTUM_US };
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--streams")) o.streams = (uint32_t)option_value(argc, argv, &i, 2, MAX_STREAMS);
        else if (!strcmp(a, "--warmup-ms")) o.warmup_ms = option_value(argc, argv, &i, 0, MAX_WINDOW_MS);
        else if (!strcmp(a, "--measure-ms")) o.measure_ms = option_value(argc, argv, &i, 1, MAX_WINDOW_MS);
        else if (!strcmp(a, "--tail-ms")) o.tail_ms = option_value(argc, argv, &i, 0, MAX_WINDOW_MS);
        else if (!strcmp(a, "--packet-samples"))
            o.packet_samples = (uint32_t)option_value(argc, argv, &i, MIN_SAMPLES, MAX_SAMPLES);
        else if (!strcmp(a, "--send-quantum-us"))
            o.quantum_us = option_value(argc, argv, &i, 0, MAX_QUANTUM_US);
        else if (!strcmp(a, "--payload")) {
            if (i + 1 >= argc) fail_usage("--payload needs a file name");
            o.payload_file = argv[++i];
        } else {
            char why[300];
            snprintf(why, sizeof why, "unknown argument '%.200s'", a);
            usage_and_exit(why);
        }
    }
    if (!o.streams) usage_and_exit("--streams is required");
    if (o.streams % 2) usage_and_exit("--streams must be even (callers and agents in pairs)");
    if (o.warmup_ms < 0) usage_and_exit("--warmup-ms is required");
    if (o.measure_ms < 0) usage_and_exit("--measure-ms is required");
    return o;
}

/* Loads the payload file and appends its start (cyclically) so a packet never wraps. */
static void load_payload(run_state *r)
{
    const char *path = r->opt.payload_file;
    if (!path) return;
    FILE *f = fopen(path, "rb");
    if (!f) fail_usage("cannot open payload file '%s': %s", path, strerror(errno));
    size_t cap = 1 << 16, len = 0;
    uint8_t *data = xcalloc(cap, 1, "payload");
    for (;;) {
        if (len == cap) {
            cap *= 2;
            uint8_t *bigger = realloc(data, cap);
            if (!bigger) fail_system("out of memory reading payload file");
            data = bigger;
        }
        size_t got = fread(data + len, 1, cap - len, f);
        len += got;
        if (got == 0) break;
    }
    if (ferror(f)) fail_usage("cannot read payload file '%s'", path);
    fclose(f);
    if (len == 0) fail_usage("payload file '%s' is empty", path);

    size_t samples = r->opt.packet_samples;
    uint8_t *ext = xcalloc(len + samples, 1, "payload");
    for (size_t i = 0; i < len + samples; i++) ext[i] = data[i % len];
    free(data);
    r->payload = ext;
    r->payload_len = len;
}

/* ------------------------------------------------------------------------------------------ */
/* Sockets                                                                                    */

static void raise_fd_limit(uint32_t needed)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) fail_system("getrlimit: %s", strerror(errno));
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur >= needed) return;
    if (rl.rlim_cur == RLIM_INFINITY) return;
    rlim_t want = needed;
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want)
        fail_system("need %u file descriptors but the hard limit is %llu (raise ulimit -Hn)",
                    needed, (unsigned long long)rl.rlim_max);
    rl.rlim_cur = want;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
        fail_system("cannot raise the open-file limit to %u: %s", needed, strerror(errno));
}

static struct sockaddr_in loopback(uint16_t port)
{
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    return a;
}

static void open_stream_socket(run_state *r, uint32_t k)
{
    stream *s = &r->streams[k];
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) fail_system("socket (stream %u): %s", k, strerror(errno));
    int rcvbuf = RCVBUF_BYTES, on = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf) != 0)
        fail_system("SO_RCVBUF (stream %u): %s", k, strerror(errno));
    if (setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof on) != 0)
        fail_system("SO_TIMESTAMPNS (stream %u): %s", k, strerror(errno));
    struct sockaddr_in a = loopback(0);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0) fail_system("bind (stream %u): %s", k, strerror(errno));
    socklen_t alen = sizeof a;
    if (getsockname(fd, (struct sockaddr *)&a, &alen) != 0)
        fail_system("getsockname (stream %u): %s", k, strerror(errno));
    struct epoll_event ev = { .events = EPOLLIN | EPOLLET, .data.u32 = k };
    if (epoll_ctl(r->epoll_fd, EPOLL_CTL_ADD, fd, &ev) != 0)
        fail_system("epoll_ctl (stream %u): %s", k, strerror(errno));

    s->fd = fd;
    s->local_port = ntohs(a.sin_port);
    s->ssrc = (uint32_t)random_u64();
    s->seq = (uint16_t)random_u64();
    s->timestamp = (uint32_t)random_u64();
    s->counter = 0;
    s->payload_pos = r->payload_len ? (size_t)((uint64_t)k * r->payload_len / r->opt.streams) : 0;
    s->ring = r->rings + (size_t)k * RING_SIZE;
}

static void open_streams(run_state *r)
{
    uint32_t n = r->opt.streams;
    raise_fd_limit(n + 16);
    r->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    if (r->epoll_fd < 0) fail_system("epoll_create1: %s", strerror(errno));
    r->streams = xcalloc(n, sizeof(stream), "streams");
    r->rings = xalloc_touched((size_t)n * RING_SIZE, sizeof(send_record), "send records");
    for (uint32_t k = 0; k < n; k++) open_stream_socket(r, k);
}

static void print_ports(const run_state *r)
{
    fputs("{\"ports\":[", stdout);
    for (uint32_t k = 0; k < r->opt.streams; k++) printf(k ? ",%u" : "%u", r->streams[k].local_port);
    fputs("]}\n", stdout);
    fflush(stdout);
}

/* ------------------------------------------------------------------------------------------ */
/* Wiring (stdin)                                                                             */

static void wire_stream(run_state *r, uint32_t k, uint16_t port)
{
    stream *s = &r->streams[k];
    struct sockaddr_in a = loopback(port);
    if (connect(s->fd, (struct sockaddr *)&a, sizeof a) != 0)
        fail_system("connect (stream %u to port %u): %s", k, port, strerror(errno));
    s->remote_port = port;
}

/* Reads "<index> <remotePort>" lines until "go".  Any malformed line exits 2. */
static void read_wiring(run_state *r)
{
    char line[256];
    unsigned long lineno = 0;
    for (;;) {
        if (!fgets(line, sizeof line, stdin)) {
            if (ferror(stdin)) fail_system("reading stdin: %s", strerror(errno));
            fail_usage("stdin closed before \"go\" (after %lu lines)", lineno);
        }
        lineno++;
        size_t len = strlen(line);
        if (len == sizeof line - 1 && line[len - 1] != '\n')
            fail_usage("stdin line %lu is too long (expected \"<index> <remotePort>\" or \"go\")", lineno);
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r' || line[len - 1] == ' ' || line[len - 1] == '\t'))
            line[--len] = 0;
        char *p = line;
        while (*p == ' ' || *p == '\t') p++;
        if (!*p) continue;
        if (!strcmp(p, "go")) return;

        char idx_text[32], port_text[32], extra[2];
        long long idx, port;
        int fields = sscanf(p, "%31s %31s %1s", idx_text, port_text, extra);
        if (fields != 2)
            fail_usage("stdin line %lu: malformed \"%.100s\" (expected \"<index> <remotePort>\" or \"go\")", lineno, p);
        if (!parse_int(idx_text, 0, (long long)r->opt.streams - 1, &idx))
            fail_usage("stdin line %lu: stream index '%s' is not a number in 0..%u", lineno, idx_text, r->opt.streams - 1);
        if (!parse_int(port_text, 1, 65535, &port))
            fail_usage("stdin line %lu: remote port '%s' is not a number in 1..65535", lineno, port_text);
        if (r->streams[idx].remote_port)
            fail_usage("stdin line %lu: stream %lld already has remote port %u", lineno, idx, r->streams[idx].remote_port);
        wire_stream(r, (uint32_t)idx, (uint16_t)port);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Preparing the run                                                                          */

/* Sizes the latency lists from the measured packets the senders can send, and the send order. */
static void prepare_run(run_state *r)
{
    uint32_t n = r->opt.streams;
    r->active = xcalloc(n, sizeof(uint32_t), "schedule");
    uint32_t senders[2] = { 0, 0 };
    for (uint32_t k = 0; k < n; k++) {
        if (!r->streams[k].remote_port) continue;
        r->active[r->active_count++] = k;
        senders[k >= r->half]++;
    }
    /* A stream schedules at most ceil(M / P) + 1 sends inside a window of length M. */
    size_t per_stream = (size_t)((r->opt.measure_ms * NS_PER_MS) / r->period_ns) + 2;
    for (int d = 0; d < 2; d++) {
        r->dir[d].cap = (size_t)senders[d] * per_stream;
        /* Touched now so the first measured packets do not take page faults. */
        r->dir[d].latency_ms = xalloc_touched(r->dir[d].cap, sizeof(float), "latency list");
    }

    /* The RTP header's constant parts and the silence payload. */
    r->packet_len = RTP_HEADER + r->opt.packet_samples;
    memset(r->packet, 0xFF, sizeof r->packet);
    r->packet[0] = 0x80;   /* V=2, no padding, no extension, no CSRC */
    r->packet[1] = 0x00;   /* M=0, PT=0 (PCMU) */

    if (prctl(PR_SET_TIMERSLACK, TIMER_SLACK_NS, 0, 0, 0) != 0)
        fprintf(stderr, "rtpload: warning: cannot set timer slack: %s\n", strerror(errno));
}

static void schedule_from(run_state *r, int64_t go_ns)
{
    r->t0 = go_ns + START_DELAY_NS;
    r->measure_start = r->t0 + r->opt.warmup_ms * NS_PER_MS;
    r->measure_end = r->measure_start + r->opt.measure_ms * NS_PER_MS;
    r->send_end = r->measure_end + r->opt.tail_ms * NS_PER_MS;
    r->finish = r->send_end + DRAIN_NS;
}

/* Slot s of the send schedule: round s / A of active stream active[s % A]. */
static int64_t slot_due(const run_state *r, uint64_t slot)
{
    if (!r->active_count) return INT64_MAX;
    uint64_t round = slot / r->active_count;
    uint32_t k = r->active[slot % r->active_count];
    return r->t0 + (int64_t)round * r->period_ns + (int64_t)k * r->period_ns / r->opt.streams;
}

/* ------------------------------------------------------------------------------------------ */
/* Sending                                                                                    */

/* send() with the error policy: ECONNREFUSED is counted and the send retried once (the error
 * was the peer's earlier ICMP, consumed by this call); EAGAIN drops the packet; else exit 1. */
static void send_datagram(run_state *r, uint32_t k, const uint8_t *data, size_t len, send_record *rec)
{
    int refusals = 0;
    for (;;) {
        if (rec) rec->send_ns = real_ns();
        ssize_t n = send(r->streams[k].fd, data, len, 0);
        if (n >= 0) return;
        if (errno == EINTR) continue;
        if (errno == ECONNREFUSED) {
            r->refused++;
            if (++refusals <= 1) continue;
            return;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            r->send_dropped++;
            return;
        }
        fail_system("send (stream %u to port %u): %s", k, r->streams[k].remote_port, strerror(errno));
    }
}

static void send_packet(run_state *r, uint32_t k, int measured)
{
    stream *s = &r->streams[k];
    uint8_t *p = r->packet;
    uint8_t *payload = p + RTP_HEADER;
    put_u16(p + 2, s->seq);
    put_u32(p + 4, s->timestamp);
    put_u32(p + 8, s->ssrc);
    if (r->payload) {
        memcpy(payload, r->payload + s->payload_pos, r->opt.packet_samples);
        s->payload_pos = (s->payload_pos + r->opt.packet_samples) % r->payload_len;
    }
    put_u32(payload, k);
    put_u32(payload + 4, s->counter);

    send_record *rec = &s->ring[s->counter % RING_SIZE];
    rec->counter = s->counter;
    rec->state = measured ? REC_PENDING : REC_UNTRACKED;
    if (measured) r->dir[k >= r->half].sent++;

    send_datagram(r, k, p, r->packet_len, measured ? rec : NULL);

    s->seq++;
    s->timestamp += r->opt.packet_samples;
    s->counter++;
    r->loop_sends++;
}

/* Sends every slot due by `now`; returns the next slot. */
static uint64_t send_due(run_state *r, uint64_t slot, int64_t now)
{
    for (;;) {
        int64_t due = slot_due(r, slot);
        if (due > now || due >= r->send_end) return slot;
        int64_t lag = now - due;
        if (lag > LATE_NS) r->late_sends++;
        if (lag > r->max_send_lag_ns) r->max_send_lag_ns = lag;
        int measured = due >= r->measure_start && due < r->measure_end;
        send_packet(r, r->active[slot % r->active_count], measured);
        slot++;
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Receiving                                                                                  */

static int64_t kernel_timestamp(run_state *r, struct msghdr *m)
{
    for (struct cmsghdr *c = CMSG_FIRSTHDR(m); c; c = CMSG_NXTHDR(m, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
            struct timespec ts;
            memcpy(&ts, CMSG_DATA(c), sizeof ts);
            return (int64_t)ts.tv_sec * NS_PER_S + ts.tv_nsec;
        }
    }
    r->no_kernel_ts++;
    return real_ns();
}

static void record_latency(direction *d, int64_t latency_ns)
{
    if (d->matched >= d->cap) return;  /* cannot happen: cap bounds the measured sends */
    d->latency_ms[d->matched++] = (float)((double)latency_ns / NS_PER_MS);
}

/* One datagram that stream `receiver` got: match it by its marker. */
static void handle_packet(run_state *r, uint32_t receiver, const uint8_t *data, size_t len, int64_t arrival_ns)
{
    if (len < RTP_HEADER + MARKER_BYTES) { r->foreign++; return; }
    uint32_t sender = get_u32(data + RTP_HEADER);
    uint32_t counter = get_u32(data + RTP_HEADER + 4);
    if (sender >= r->opt.streams) { r->foreign++; return; }
    stream *s = &r->streams[sender];
    direction *d = &r->dir[sender >= r->half];
    send_record *rec = &s->ring[counter % RING_SIZE];
    if (rec->counter != counter) {
        if (counter < s->counter) d->stale++;  /* sent, but its record was recycled */
        else r->foreign++;                     /* a counter never sent */
        return;
    }
    uint32_t partner = sender < r->half ? sender + r->half : sender - r->half;
    if (receiver != partner) r->wrong_receiver++;
    if (rec->state == REC_UNTRACKED) return;   /* warmup or tail packet */
    if (rec->state == REC_MATCHED) { d->duplicates++; return; }
    rec->state = REC_MATCHED;
    record_latency(d, arrival_ns - rec->send_ns);
}

static void reset_receive_buffers(run_state *r)
{
    for (int i = 0; i < RECV_BATCH; i++) {
        struct msghdr *m = &r->msgs[i].msg_hdr;
        r->iovs[i].iov_base = r->bufs[i];
        r->iovs[i].iov_len = RECV_BUF_BYTES;
        m->msg_name = NULL;
        m->msg_namelen = 0;
        m->msg_iov = &r->iovs[i];
        m->msg_iovlen = 1;
        m->msg_control = r->ctrl[i].buf;
        m->msg_controllen = sizeof r->ctrl[i].buf;
        m->msg_flags = 0;
    }
}

/* Reads the socket until it is empty: a short recvmmsg batch means the queue ran dry (its
 * EAGAIN is swallowed by recvmmsg), and epoll is edge-triggered, so anything arriving after
 * that is reported again. */
static void drain_socket(run_state *r, uint32_t k)
{
    int fd = r->streams[k].fd;
    for (;;) {
        for (int i = 0; i < RECV_BATCH; i++) r->msgs[i].msg_hdr.msg_controllen = sizeof r->ctrl[i].buf;
        int n = recvmmsg(fd, r->msgs, RECV_BATCH, MSG_DONTWAIT, NULL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) return;
            if (errno == EINTR) continue;
            if (errno == ECONNREFUSED) { r->refused++; continue; }
            fail_system("recvmmsg (stream %u): %s", k, strerror(errno));
        }
        for (int i = 0; i < n; i++) {
            int64_t arrival = kernel_timestamp(r, &r->msgs[i].msg_hdr);
            handle_packet(r, k, r->bufs[i], r->msgs[i].msg_len, arrival);
        }
        if (n < RECV_BATCH) return;
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Event loop                                                                                 */

/* Reads every socket that has something queued (epoll is polled, never waited on). */
static void receive_ready(run_state *r)
{
    struct epoll_event events[MAX_EVENTS];
    for (;;) {
        int n = epoll_wait(r->epoll_fd, events, MAX_EVENTS, 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            fail_system("epoll_wait: %s", strerror(errno));
        }
        for (int i = 0; i < n; i++) drain_socket(r, events[i].data.u32);
        if (n < MAX_EVENTS) return;
    }
}

static void sleep_until(int64_t deadline)
{
    struct timespec ts = { .tv_sec = deadline / NS_PER_S, .tv_nsec = deadline % NS_PER_S };
    int err;
    while ((err = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL)) == EINTR) {}
    if (err) fail_system("clock_nanosleep: %s", strerror(err));
}

/* Snapshots CPU use at the measure window's edges. */
static void track_cpu(run_state *r, int64_t now)
{
    if (!r->cpu_started && now >= r->measure_start) {
        r->cpu_started = 1;
        r->cpu_wall_start = mono_ns();
        r->cpu_used_start = cpu_used_ns();
    }
    if (!r->cpu_ended && now >= r->measure_end) {
        r->cpu_ended = 1;
        r->cpu_wall_end = mono_ns();
        r->cpu_used_end = cpu_used_ns();
    }
}

/* When to wake next: the next send (rounded up to the send quantum's grid), the measure
 * window's edges, the end, and never more than MAX_SLEEP_NS from now. */
static int64_t next_wake(const run_state *r, uint64_t slot, int64_t now)
{
    int64_t wake = r->finish;
    if (now + MAX_SLEEP_NS < wake) wake = now + MAX_SLEEP_NS;
    int64_t due = slot_due(r, slot);
    if (due < r->send_end) {
        int64_t q = r->quantum_ns;
        if (q > 0) due = r->t0 + (due - r->t0 + q - 1) / q * q;
        if (due < wake) wake = due;
    }
    if (!r->cpu_started && r->measure_start < wake) wake = r->measure_start;
    if (!r->cpu_ended && r->measure_end < wake) wake = r->measure_end;
    return wake;
}

/*
 * The loop sleeps until the next send is due, sends everything due, then reads whatever has
 * arrived.  It does not wake for arrivals: their time is the kernel's receive timestamp, so
 * reading them later changes nothing but saves a wakeup (a context switch, the dearest part of
 * the loop, especially in a VM).  For the same reason sends due within one send quantum go out
 * together: the recorded send time is the real one either way.
 */
static void run_loop(run_state *r)
{
    uint64_t slot = 0;
    reset_receive_buffers(r);
    schedule_from(r, mono_ns());
    for (;;) {
        int64_t now = mono_ns();
        track_cpu(r, now);
        slot = send_due(r, slot, now);
        receive_ready(r);
        if (now >= r->finish) break;
        sleep_until(next_wake(r, slot, mono_ns()));
        r->loop_wakeups++;
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Report                                                                                     */

static int compare_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile (in per mille) of a sorted list: the ceil(p * n)-th smallest. */
static double percentile(const float *sorted, size_t n, unsigned per_mille)
{
    size_t rank = (size_t)(((uint64_t)n * per_mille + 999) / 1000);
    if (rank < 1) rank = 1;
    if (rank > n) rank = n;
    return sorted[rank - 1];
}

static void print_stat(const char *name, double value, int have)
{
    if (have) printf(",\"%s\":%.4f", name, value);
    else printf(",\"%s\":null", name);
}

static void print_direction(const char *name, direction *d)
{
    size_t n = d->matched;
    float *lat = d->latency_ms;
    qsort(lat, n, sizeof(float), compare_float);
    double p50 = n ? percentile(lat, n, 500) : 0;
    double p99 = n ? percentile(lat, n, 990) : 0;
    double p999 = n ? percentile(lat, n, 999) : 0;
    double max = n ? lat[n - 1] : 0;
    /* |latency - median|, reusing the list (it is not needed sorted any more). */
    for (size_t i = 0; i < n; i++) {
        double off = (double)lat[i] - p50;
        lat[i] = (float)(off < 0 ? -off : off);
    }
    qsort(lat, n, sizeof(float), compare_float);
    double jitter99 = n ? percentile(lat, n, 990) : 0;

    printf("\"%s\":{\"sent\":%" PRIu64 ",\"matched\":%" PRIu64 ",\"lost\":%" PRIu64
           ",\"duplicates\":%" PRIu64 ",\"stale\":%" PRIu64,
           name, d->sent, d->matched, d->sent - d->matched, d->duplicates, d->stale);
    print_stat("p50Ms", p50, n > 0);
    print_stat("p99Ms", p99, n > 0);
    print_stat("p999Ms", p999, n > 0);
    print_stat("maxMs", max, n > 0);
    print_stat("addedJitterP99Ms", jitter99, n > 0);
    putchar('}');
}

static void report(run_state *r)
{
    int64_t wall = r->cpu_wall_end - r->cpu_wall_start;
    double cpu_pct = wall > 0 ? 100.0 * (double)(r->cpu_used_end - r->cpu_used_start) / (double)wall : 0;
    putchar('{');
    print_direction("callerToAgent", &r->dir[0]);
    putchar(',');
    print_direction("agentToCaller", &r->dir[1]);
    printf(",\"lateSends\":%" PRIu64 ",\"maxSendLagMs\":%.4f,\"foreign\":%" PRIu64 ",\"wrongReceiver\":%" PRIu64
           ",\"noKernelTimestamp\":%" PRIu64 ",\"refused\":%" PRIu64 ",\"sendDropped\":%" PRIu64
           ",\"cpuPct\":%.2f,\"loopSends\":%" PRIu64 ",\"loopWakeups\":%" PRIu64 "}\n",
           r->late_sends, (double)r->max_send_lag_ns / NS_PER_MS, r->foreign, r->wrong_receiver,
           r->no_kernel_ts, r->refused, r->send_dropped, cpu_pct, r->loop_sends, r->loop_wakeups);
    fflush(stdout);
}

/* ------------------------------------------------------------------------------------------ */

int main(int argc, char **argv)
{
    static run_state r;  /* large (receive buffers); static keeps it off the stack */
    r.opt = parse_options(argc, argv);
    r.half = r.opt.streams / 2;
    r.period_ns = (int64_t)r.opt.packet_samples * NS_PER_S / 8000;
    r.quantum_ns = r.opt.quantum_us * 1000;

    load_payload(&r);
    open_streams(&r);
    print_ports(&r);
    read_wiring(&r);
    prepare_run(&r);
    run_loop(&r);
    report(&r);
    return 0;
}
