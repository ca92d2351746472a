/*
 * spandsp_referee.c - hushpay's test-side DTMF referee over libspandsp's dtmf_rx.
 *
 * Reads raw signed 16-bit little-endian 8 kHz mono samples from stdin, feeds them to
 * dtmf_rx in 160-sample (20 ms) packets and prints one JSON line per digit on stdout:
 *
 *   {"digit":"5","onMs":127.5,"offMs":165.75,"level":-6}
 *
 * onMs / offMs are the stream positions (ms from the first sample) at which spandsp
 * CONFIRMED tone-on and tone-off, i.e. tone edge + detection latency. They are sample
 * accurate: every packet is handed to dtmf_rx in pieces that end on spandsp's 102-sample
 * block boundaries, so a realtime callback fired inside a piece belongs to the block that
 * ends at that piece's end. level is spandsp's reported tone-on level in dBm0 (total power
 * of the block, both tones together).
 *
 * At EOF the receiver is flushed with silence, so a digit still sounding at the end of the
 * input is reported (its offMs then lies after the last input sample).
 *
 * options:
 *   -t DB   normal twist (low group louder) in dB      (default: spandsp's, 8)
 *   -r DB   reverse twist (high group louder) in dB    (default: spandsp's, 4)
 *   -T DBM0 detection threshold in dBm0                (default: spandsp's, -42)
 *   -D      switch on spandsp's 350/440 Hz dial-tone notch
 *   -s      print {"cpuSeconds":..,"processCpuSeconds":..,"samples":..} to stderr at the end;
 *           cpuSeconds is the CPU time spent inside dtmf_rx only.
 *
 * build: gcc -O2 -Wall -o spandsp_referee spandsp_referee.c -lspandsp -lm
 * exit status: 0 ok, 2 usage error, 3 read error.
 */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/resource.h>
#include <spandsp.h>

#define PACKET 160           /* samples per feed, one 20 ms G.711 packet */
#define BLOCK 102            /* spandsp dtmf_rx Goertzel block length */
#define READ_PACKETS 50      /* packets read from stdin at a time (1 s) */

typedef struct {
    long long block_end;     /* stream position (samples) of the end of the block being fed */
    long long delay_sum;     /* sum of the library's 'delay' arguments, as a cross-check */
    int delay_mismatch;
    int cur;                 /* digit currently on, or 0 */
    long long on_pos;
    int on_level;
} referee_t;

static void print_digit(const referee_t *r, long long off_pos)
{
    printf("{\"digit\":\"%c\",\"onMs\":%.10g,\"offMs\":%.10g,\"level\":%d}\n",
           r->cur, (double) r->on_pos / 8.0, (double) off_pos / 8.0, r->on_level);
}

static void on_tone(void *user, int code, int level, int delay)
{
    referee_t *r = (referee_t *) user;
    long long pos = r->block_end;
    /* spandsp versions that pass the samples since the last report let us cross-check */
    if (delay > 0) {
        r->delay_sum += delay;
        if (r->delay_sum != pos)
            r->delay_mismatch = 1;
    }
    if (r->cur)
        print_digit(r, pos);     /* tone off, or a direct change to another digit */
    if (code) {
        r->cur = code;
        r->on_pos = pos;
        r->on_level = level;
    } else {
        r->cur = 0;
    }
}

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

/* Feed n samples, cut at block boundaries so callbacks map to exact positions. */
static void feed(dtmf_rx_state_t *s, referee_t *r, long long *pos, const int16_t *amp, int n)
{
    while (n > 0) {
        int into_block = (int) (*pos % BLOCK);
        int piece = BLOCK - into_block;
        if (piece > n)
            piece = n;
        r->block_end = *pos + piece;
        dtmf_rx(s, amp, piece);
        *pos += piece;
        amp += piece;
        n -= piece;
    }
}

static int parse_int(const char *text, int *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || end == text || *end != '\0' || v < -200 || v > 200)
        return -1;
    *out = (int) v;
    return 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: spandsp_referee [-t twist_dB] [-r reverse_twist_dB] [-T threshold_dBm0] [-D] [-s] < s16le_8k_mono\n");
}

int main(int argc, char **argv)
{
    int twist = -1, rtwist = -1, thr = -99, dialtone = -1, stats = 0, opt;
    while ((opt = getopt(argc, argv, "t:r:T:Dsh")) != -1) {
        switch (opt) {
        case 't': if (parse_int(optarg, &twist) || twist < 0) { usage(); return 2; } break;
        case 'r': if (parse_int(optarg, &rtwist) || rtwist < 0) { usage(); return 2; } break;
        case 'T': if (parse_int(optarg, &thr) || thr <= -99) { usage(); return 2; } break;
        case 'D': dialtone = 1; break;
        case 's': stats = 1; break;
        default: usage(); return 2;
        }
    }
    if (optind != argc) { usage(); return 2; }

    static referee_t r;
    memset(&r, 0, sizeof r);
    dtmf_rx_state_t *s = dtmf_rx_init(NULL, NULL, NULL);
    if (!s) { fprintf(stderr, "dtmf_rx_init failed\n"); return 1; }
    /* negative twist / -99 threshold / negative dial-tone flag = keep spandsp's default */
    dtmf_rx_parms(s, dialtone, twist, rtwist, thr);
    dtmf_rx_set_realtime_callback(s, on_tone, &r);

    static uint8_t raw[PACKET * READ_PACKETS * 2 + 1];
    static int16_t amp[PACKET * READ_PACKETS];
    size_t carry = 0;                /* a dangling odd byte from the previous read */
    long long pos = 0, total = 0;
    double dsp_cpu = 0.0;

    for (;;) {
        size_t got = fread(raw + carry, 1, sizeof raw - 1 - carry, stdin);
        size_t have = carry + got;
        size_t n = have / 2;
        if (n > 0) {
            for (size_t i = 0; i < n; i++)
                amp[i] = (int16_t) (uint16_t) (raw[2 * i] | (raw[2 * i + 1] << 8));
            carry = have - 2 * n;
            if (carry)
                raw[0] = raw[2 * n];
            double t0 = cpu_now();
            for (size_t k = 0; k < n; k += PACKET) {
                int len = (int) ((n - k) < PACKET ? (n - k) : PACKET);
                feed(s, &r, &pos, amp + k, len);
            }
            dsp_cpu += cpu_now() - t0;
            total += (long long) n;
        } else {
            carry = have;
        }
        if (got == 0) {
            if (ferror(stdin)) { perror("stdin"); return 3; }
            break;
        }
    }

    /* Flush: finish the current block and add four more blocks of silence. A tone-off needs
       two tone-free blocks; a digit confirmed only in the last blocks needs them as well. */
    {
        static int16_t zeros[PACKET];
        long long flush = (BLOCK - pos % BLOCK) % BLOCK + 4 * BLOCK;
        while (flush > 0) {
            int len = flush < PACKET ? (int) flush : PACKET;
            feed(s, &r, &pos, zeros, len);
            flush -= len;
        }
    }
    if (r.cur) {                     /* cannot happen after silence, but never drop a digit */
        print_digit(&r, pos);
        r.cur = 0;
    }
    if (fflush(stdout) != 0) { perror("stdout"); return 3; }

    if (r.delay_mismatch)
        fprintf(stderr, "warning: spandsp 'delay' arguments disagree with block positions\n");
    if (stats) {
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        double proc = (double) ru.ru_utime.tv_sec + (double) ru.ru_utime.tv_usec / 1e6
                    + (double) ru.ru_stime.tv_sec + (double) ru.ru_stime.tv_usec / 1e6;
        fprintf(stderr, "{\"cpuSeconds\":%.6f,\"processCpuSeconds\":%.6f,\"samples\":%lld}\n",
                dsp_cpu, proc, total);
    }
    dtmf_rx_free(s);
    return 0;
}
