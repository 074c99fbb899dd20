/* y[m, n] = bias[n] + sum_k x[m, k] W[n, k] for a few rows of x (the GPT's beam-3 decode steps).
 *
 * Why our own kernel: a decode step multiplies 3 rows by every GPT weight, so its time is the time
 * to stream 1.9 GB of weights from memory. oneDNN's and MKL's 3-row kernels read them at 55-60 %
 * of the machine's read bandwidth (docs/performance.md); this one reads one sequential stream per
 * thread and keeps the few rows of x in L1, which is what the bandwidth allows.
 *
 * Layout of W ("panels", made by index_tts/modules/panel_linear.py): [ceil(n / 64), k, 64], panel p
 * holding output columns 64p .. 64p+63 (zero-padded past n): for each k, the 64 weights that four
 * vector multiply-adds need are 4 consecutive 64-byte lines, and a thread reads its panels front
 * to back as one stream (16-column panels, four streams per thread, were 0-8 % slower in an A/B here).
 * The weights are fp32, or bf16 (the upper half of an fp32: widened exactly by a shift or a mask,
 * below) for the fast mode. x, bias and y are fp32; each output sums over k in order, in fp32.
 *
 * On a CPU with AMX (and k a multiple of 32), bf16 panels are laid out as AMX tiles instead and
 * multiplied by the tile unit, with the rows of x rounded to bf16 as well (sums still in fp32):
 * widening bf16 and 12 vector multiply-adds per k-row kept two Xeon cores from streaming bf16 at
 * the memory's speed (13 GB/s against fp32's 17 in one process), the tiles do (16 GB/s), and 16
 * rows share one pass over a panel instead of 4 (the latent pass, the prefill). Inside a panel:
 * [k / 32][4 groups of 16 columns][16 k-pairs][16 columns][2], so each 1 KB is one weight tile
 * (`panel_linear_bf16_pack` makes it).
 *
 * Built at first use by panel_linear.py with -march=native for this CPU, linked to torch's own
 * OpenMP runtime so that its threads are torch's. */

#include <stdint.h>
#include <string.h>
#include <omp.h>

#include "amx.h"
#include "panel_linear.h"
#include "vector_math.h"

typedef u32x16_bits u32x16;

enum { COLS = 16, PANEL = PANEL_COLUMNS, VECTORS = PANEL / COLS, ROWS = 4 }; /* 4 x 4 accumulators in registers */
/* Each k-row's lines are asked for twice: into L2 8 KB before they are read, into L1 2 KB before.
 * Over 24 layers of GPT weights on two Xeon cores the hardware prefetcher alone streamed ~18 GB/s,
 * L1 requests 4 KB ahead ~21.5, these two ~24.5 (a pure read, no arithmetic, ~26): L1 has few
 * outstanding misses to give a stream, L2 more. */
enum { PREFETCH_L2_BYTES = 8192, PREFETCH_L1_BYTES = 2048 };

/* Columns 16p..16p+15 of one k-row of a panel. */
static inline f32x16 load_f32(const float *row, int p) { return load16(row + p * COLS); }

/* bf16 weights: one 64-byte line of a k-row holds columns 32m..32m+31 (m = p / 2), column 32m + 2j
 * in the low half of 32-bit lane j and 32m + 2j + 1 in its high half (little-endian). A shift
 * widens the even columns, a mask the odd ones: two operations per 32 weights (a zero-extension and
 * a shift per 16 made the bf16 stream slower than memory on an Intel Xeon, where both share the
 * FMA ports). Vector 2m then holds the even columns and 2m + 1 the odd ones, until `unzip`. */
static inline f32x16 load_bf16(const uint16_t *row, int p) {
    u32x16 bits;
    memcpy(&bits, row + (p >> 1) * 2 * COLS, sizeof bits);
    bits = (p & 1) ? bits & 0xFFFF0000u : bits << 16;
    f32x16 v;
    memcpy(&v, &bits, sizeof v);
    return v;
}

/* Even and odd columns of 32 (load_bf16's vectors 2m, 2m + 1) -> columns 32m..32m+15, 32m+16..32m+31. */
static inline void unzip(f32x16 *even, f32x16 *odd) {
    f32x16 e = *even, o = *odd;
    *even = __builtin_shufflevector(e, o, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    *odd = __builtin_shufflevector(e, o, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
}

/* Columns col..col+15 of output row `row` (a 16-column vector never straddles two sections). */
static inline void store(f32x16 acc, int col, int n, const float *bias, const struct outputs *out, int row,
                         int epilogue) {
    float v[COLS];
    memcpy(v, &acc, sizeof v);
    int valid = n - col < COLS ? n - col : COLS;
    for (int j = 0; j < valid; j++) v[j] += bias ? bias[col + j] : 0.f;
    if (epilogue == STORE_GELU) store16(v, gelu_tanh16(load16(v)));
    int s = col / out->width;
    float *y = out->y[s] + row * out->ldy[s] + (col - s * out->width);
    for (int j = 0; j < valid; j++) y[j] = epilogue == ADD ? y[j] + v[j] : v[j];
}

/* The first np 16-column vectors of one panel (`w`, k x 64) times nr rows of x (output rows
 * row0..); np, nr are constants after inlining. With a `gate`, the outputs are stored only if this
 * call is the first to set it (gpt_decode.c: a panel another thread may be computing too); returns
 * whether it stored. */
#define DEFINE_BLOCK(NAME, WTYPE, LOAD, ZIPPED)                                                   \
    static inline __attribute__((always_inline)) int NAME(                                       \
        const float *x, int k, const WTYPE *w, int np, int nr, int col, int n,                   \
        const float *bias, const struct outputs *out, int row0, int epilogue, unsigned char *gate) { \
        f32x16 acc[VECTORS][ROWS];                                                               \
        const int nv = ZIPPED ? (np + 1) & ~1 : np; /* zipped vectors come in pairs */           \
        memset(acc, 0, sizeof acc);                                                              \
        for (int i = 0; i < k; i++) {                                                            \
            const char *row = (const char *)(w + (size_t)i * PANEL);                             \
            for (int line = 0; line < (int)(PANEL * sizeof(WTYPE)); line += 64) {                \
                __builtin_prefetch(row + PREFETCH_L2_BYTES + line, 0, 2);                        \
                __builtin_prefetch(row + PREFETCH_L1_BYTES + line, 0, 3);                        \
            }                                                                                    \
            for (int p = 0; p < nv; p++) {                                                       \
                f32x16 wv = LOAD(w + (size_t)i * PANEL, p);                                      \
                for (int r = 0; r < nr; r++) acc[p][r] += x[(size_t)r * k + i] * wv;             \
            }                                                                                    \
        }                                                                                        \
        if (gate && !first_to_set(gate)) return 0;                                               \
        for (int p = 0; ZIPPED && p < nv; p += 2)                                                \
            for (int r = 0; r < nr; r++) unzip(&acc[p][r], &acc[p + 1][r]);                      \
        for (int p = 0; p < np; p++)                                                             \
            for (int r = 0; r < nr; r++) store(acc[p][r], col + p * COLS, n, bias, out, row0 + r, epilogue); \
        return 1;                                                                                \
    }

DEFINE_BLOCK(block_f32, float, load_f32, 0)
DEFINE_BLOCK(block_bf16, uint16_t, load_bf16, 1)

/* ---- AMX tiles (bf16) ------------------------------------------------------------------- */

int panel_linear_bf16_tiled(int k) { return k % TILE_K == 0 && amx_allowed(); }

/* fp32 panels [np][k][64] -> bf16 panels as tiles (only where panel_linear_bf16_tiled(k)). */
void panel_linear_bf16_pack(const float *src, int np, int k, uint16_t *dst) {
#pragma omp parallel for schedule(static)
    for (int p = 0; p < np; p++) {
        const float *s = src + (size_t)p * k * PANEL;
        uint16_t *d = dst + (size_t)p * k * PANEL;
        for (int kk = 0; kk < k; kk += 2)
            for (int g = 0; g < PANEL / COLS; g++) { /* k-rows kk, kk+1 of columns 16g..16g+15 -> 16 pairs */
                u32x16 pair = round_bf16(load16(s + (size_t)kk * PANEL + g * COLS)) |
                              round_bf16(load16(s + (size_t)(kk + 1) * PANEL + g * COLS)) << 16;
                memcpy(d + ((((size_t)kk / TILE_K) * 4 + g) * 16 + (kk % TILE_K) / 2) * 32, &pair, sizeof pair);
            }
    }
}

#ifdef HAVE_AMX
typedef uint16_t u16x16 __attribute__((vector_size(32)));

/* One panel (tiles, above) times nr <= 16 rows of x: tmm0-3 sum columns 16g..16g+15, tmm4 holds
 * 32 k of the rows (rounded to bf16 here, 1 KB at a time), tmm6-7 take turns with the weight
 * tiles. The configuration is loaded at every call: oneDNN's AMX kernels run on the same threads
 * with their own. */
static int block_amx(const float *x, int k, const uint16_t *w, int np, int nr, int col, int n,
                     const float *bias, const struct outputs *out, int row0, int epilogue, unsigned char *gate) {
    struct tile_config config = {.palette = 1};
    for (int t = 0; t < 5; t++) config.rows[t] = nr, config.bytes_per_row[t] = 64;
    for (int t = 6; t < 8; t++) config.rows[t] = 16, config.bytes_per_row[t] = 64;
    _tile_loadconfig(&config);
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    uint16_t rows[TILE_ROWS][TILE_K] __attribute__((aligned(64)));
    for (int kk = 0; kk < k; kk += TILE_K) {
        const uint16_t *t = w + (size_t)kk * PANEL; /* 4 tiles of 512 bf16 */
        for (int line = 0; line < 4 * TILE_BYTES; line += 64) { /* as block_f32's: 21 -> 25 GB/s here */
            _mm_prefetch((const char *)t + PREFETCH_L2_BYTES + line, _MM_HINT_T1);
            _mm_prefetch((const char *)t + PREFETCH_L1_BYTES + line, _MM_HINT_T0);
        }
        for (int r = 0; r < nr; r++)
            for (int h = 0; h < TILE_K; h += COLS) {
                u16x16 half = __builtin_convertvector(round_bf16(load16(x + (size_t)r * k + kk + h)), u16x16);
                memcpy(&rows[r][h], &half, sizeof half);
            }
        _tile_loadd(4, rows, sizeof rows[0]);
        tile_times_four(t);
    }
    float sums[TILE_ROWS][PANEL];
    _tile_stored(0, &sums[0][0], sizeof sums[0]);
    _tile_stored(1, &sums[0][16], sizeof sums[0]);
    _tile_stored(2, &sums[0][32], sizeof sums[0]);
    _tile_stored(3, &sums[0][48], sizeof sums[0]);
    if (gate && !first_to_set(gate)) return 0;
    for (int p = 0; p < np; p++)
        for (int r = 0; r < nr; r++) store(load16(&sums[r][p * COLS]), col + p * COLS, n, bias, out, row0 + r, epilogue);
    return 1;
}
#else
static int block_amx(const float *x, int k, const uint16_t *w, int np, int nr, int col, int n,
                     const float *bias, const struct outputs *out, int row0, int epilogue, unsigned char *gate) {
    return 0; /* never called: panel_linear_bf16_tiled is 0 without AMX */
}
#endif

#define CASE(BLOCK, NP, NR) \
    case (NP) * 8 + (NR): return BLOCK(x, k, w, NP, NR, col, n, bias, out, row0, epilogue, gate);
#define CASES(BLOCK, NP) CASE(BLOCK, NP, 1) CASE(BLOCK, NP, 2) CASE(BLOCK, NP, 3) CASE(BLOCK, NP, 4)

/* NAME_panel_gated: see panel_linear.h; NAME_panels: panels lo..hi-1, one sequential stream; NAME:
 * all panels, a contiguous run of them per thread, y [m, n]. */
#define DEFINE_LINEAR(NAME, BLOCK, WTYPE, TILED)                                                 \
    static int NAME##_range(const float *x, int k, const WTYPE *w, int np, int nr, int col,     \
                            int n, const float *bias, const struct outputs *out, int row0,       \
                            int epilogue, unsigned char *gate) {                                 \
        switch (np * 8 + nr) {                                                                   \
            CASES(BLOCK, 1) CASES(BLOCK, 2) CASES(BLOCK, 3) CASES(BLOCK, 4)                      \
        }                                                                                        \
        return 0;                                                                                \
    }                                                                                            \
    int NAME##_panel_gated(const float *x, int m, int k, const WTYPE *w, const float *bias,     \
                           const struct outputs *out, int n, int epilogue, int p0, unsigned char *gate) { \
        int left = (n - p0 * PANEL + COLS - 1) / COLS;                                           \
        int np = left < VECTORS ? left : VECTORS;                                                \
        const int tiled = TILED, group = tiled ? TILE_ROWS : ROWS;                               \
        /* rows in groups of 4 (16 on tiles): the panel stays in cache between the groups; the \
           first group's store decides for all */                                                \
        for (int r0 = 0; r0 < m; r0 += group) {                                                  \
            const int nr = m - r0 < group ? m - r0 : group;                                      \
            const float *rows = x + (size_t)r0 * k;                                              \
            const WTYPE *panel = w + (size_t)p0 * k * PANEL;                                     \
            if (!(tiled ? block_amx(rows, k, (const uint16_t *)panel, np, nr, p0 * PANEL, n, bias, out, r0, \
                                    epilogue, r0 ? NULL : gate)                                  \
                        : NAME##_range(rows, k, panel, np, nr, p0 * PANEL, n, bias, out, r0, epilogue, \
                                       r0 ? NULL : gate)))                                       \
                return 0;                                                                        \
        }                                                                                        \
        return 1;                                                                                \
    }                                                                                            \
    static void NAME##_panels(const float *x, int m, int k, const WTYPE *w, const float *bias,  \
                              const struct outputs *out, int n, int epilogue, int lo, int hi) {  \
        for (int p0 = lo; p0 < hi; p0++) NAME##_panel_gated(x, m, k, w, bias, out, n, epilogue, p0, NULL); \
    }                                                                                            \
    void NAME(const float *x, int m, int k, const WTYPE *w, const float *bias, float *y, int n,   \
              int epilogue) {                                                                    \
        const struct outputs out = {{y}, {(size_t)n}, n};                                        \
        const int panels = (n + PANEL - 1) / PANEL;                                              \
        _Pragma("omp parallel")                                                                  \
        {                                                                                        \
            const int me = omp_get_thread_num(), used = omp_get_num_threads();                   \
            NAME##_panels(x, m, k, w, bias, &out, n, epilogue, (int)((long)panels * me / used),  \
                          (int)((long)panels * (me + 1) / used));                                \
        }                                                                                        \
    }

DEFINE_LINEAR(panel_linear_f32, block_f32, float, 0)
DEFINE_LINEAR(panel_linear_bf16, block_bf16, uint16_t, panel_linear_bf16_tiled(k))

int panel_linear_threads(void) { return omp_get_max_threads(); }

/* The sum of a[0..n) (n a multiple of 64 per thread's share), each thread one sequential stream of
 * its share: the bench's floor for streaming weights (bench/machine.py). A plain read leaves the
 * prefetching to the hardware; on two Xeon cores it read ~26 GB/s where torch's sum read ~22 and
 * the panels above ~24.5. */
float panel_linear_stream_sum(const float *a, size_t n) {
    float total = 0.f;
#pragma omp parallel reduction(+ : total)
    {
        const int me = omp_get_thread_num(), used = omp_get_num_threads();
        const size_t lo = n * me / used / 64 * 64, hi = me + 1 == used ? n : n * (me + 1) / used / 64 * 64;
        f32x16 acc[4] = {{0}, {0}, {0}, {0}};
        for (size_t i = lo; i + 64 <= hi; i += 64)
            for (int j = 0; j < 4; j++) acc[j] += load16(a + i + 16 * j);
        total += sum16(acc[0] + acc[1] + acc[2] + acc[3]);
        for (size_t i = lo + (hi - lo) / 64 * 64; i < hi; i++) total += a[i];
    }
    return total;
}
