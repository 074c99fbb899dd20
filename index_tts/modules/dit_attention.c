/* The DiT's attention on the AMX tile unit (balanced and fast modes, where measured faster):
 * out = softmax(q k^T * scale) v for bf16 q, k, v, every key visible (one utterance, no mask).
 *
 * Why: torch's flash kernel on bf16 took 4.5 ms a layer at 2 x 8 heads x 602 frames on two Xeon
 * cores, ~55 ms of a ~310 ms balanced DiT forward, while its two products alone need ~0.7 GFLOP
 * (~1 ms on the tiles). Here each block of 16 queries takes its scores for all keys in one pass of
 * tile products (fp32 sums), then the softmax in fp32 over the whole row (at most MAX_KEYS, so no
 * running rescale), then the weights rounded to bf16 (as torch's kernel does before its second
 * product) times v in tile products, fp32 sums divided by the row's sum at the end.
 *
 * Layouts (per head; the tile unit multiplies A [16 x 32 bf16] by B [16 pairs x 16 columns x 2]):
 * q's rows are A tiles as they are; k is repacked so that each B tile holds 16 keys' 32 dims as
 * pairs (a 16 x 16 transpose of 32-bit pairs), v so that each B tile holds 16 dims of 32 keys
 * (rows 2i, 2i+1 interleaved). Keys are padded to a multiple of 32 with zeros, their scores left
 * out of the softmax. The output goes straight into [batch][query][head][dh], the layout the
 * attention's output projection reads. */

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <omp.h>

#include "amx.h"
#include "vector_math.h"

enum { HEAD_DIM = 64, MAX_KEYS = 8192 };

#if defined(HAVE_AMX) && defined(__AVX512BF16__)

int dit_attention_tiled(int dh, int t) { return dh == HEAD_DIM && t <= MAX_KEYS && amx_allowed(); }

/* k [t][64] -> [tp / 16 key tiles][2 dim halves][16 pairs][16 keys] as 32-bit pairs, zero-padded. */
static void pack_keys(const uint16_t *k, int t, int tp, uint32_t *packed) {
    const uint32_t *pairs = (const uint32_t *)k; /* [t][32] */
    for (int j = 0; j < tp / 16; j++)
        for (int half = 0; half < 2; half++)
            for (int p = 0; p < 16; p++) {
                uint32_t *dst = packed + (((size_t)j * 2 + half) * 16 + p) * 16;
                for (int n = 0; n < 16; n++) {
                    int key = j * 16 + n;
                    dst[n] = key < t ? pairs[(size_t)key * 32 + half * 16 + p] : 0;
                }
            }
}

/* v [t][64] -> [tp / 32 key steps][4 dim groups][16 key pairs][16 dims][2], zero-padded. */
static void pack_values(const uint16_t *v, int t, int tp, uint16_t *packed) {
    for (int s = 0; s < tp / 32; s++)
        for (int p = 0; p < 16; p++) {
            int k0 = s * 32 + 2 * p, k1 = k0 + 1;
            for (int g = 0; g < 4; g++) {
                uint16_t *dst = packed + (((size_t)s * 4 + g) * 16 + p) * 32;
                for (int n = 0; n < 16; n++) {
                    dst[2 * n] = k0 < t ? v[(size_t)k0 * HEAD_DIM + g * 16 + n] : 0;
                    dst[2 * n + 1] = k1 < t ? v[(size_t)k1 * HEAD_DIM + g * 16 + n] : 0;
                }
            }
        }
}

/* Lanes c..c+15 that are keys (below t). */
static inline __mmask16 valid(int c, int t) { return t - c >= LANES ? 0xFFFF : (__mmask16)((1u << (t > c ? t - c : 0)) - 1); }

/* 2^x for x <= 0 as 2^n 2^f, |f| <= 1/2, 2^f by its Taylor series to f^4 (relative error < 5e-5,
 * a tenth of the bf16 rounding the weights then get); scalef makes 2^n exactly, 0 far below. */
static inline __m512 exp2_nonpositive(__m512 x) {
    __m512 n = _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 f = _mm512_mul_ps(_mm512_sub_ps(x, n), _mm512_set1_ps(0.69314718055994531f));
    __m512 p = _mm512_set1_ps(1.0f / 24);
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f / 6));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

/* One block of rows <= 16 queries (qblock [16][64], zero-padded) against a head's packed keys and
 * values -> out rows (out_stride bf16 apart). scores [16][tp] fp32 and weights [16][tp] bf16 are
 * the caller's scratch. */
static void query_block(const uint16_t *qblock, int rows, const uint32_t *keys, const uint16_t *values, int t,
                        int tp, float scale, float *scores, uint16_t *weights, uint16_t *out, size_t out_stride) {
    _tile_loadd(4, qblock, HEAD_DIM * 2);      /* dims 0..31 */
    _tile_loadd(5, qblock + 32, HEAD_DIM * 2); /* dims 32..63 */
    for (int j = 0; j < tp / 16; j += 2) {      /* two key tiles at a time: tmm0, tmm1 */
        const uint32_t *b = keys + (size_t)j * 512;
        _tile_zero(0);
        _tile_zero(1);
        _tile_loadd(6, b, 64);
        _tile_dpbf16ps(0, 4, 6);
        _tile_loadd(7, b + 256, 64);
        _tile_dpbf16ps(0, 5, 7);
        _tile_loadd(6, b + 512, 64);
        _tile_dpbf16ps(1, 4, 6);
        _tile_loadd(7, b + 768, 64);
        _tile_dpbf16ps(1, 5, 7);
        _tile_stored(0, scores + j * 16, tp * 4);
        _tile_stored(1, scores + j * 16 + 16, tp * 4);
    }
    float inv_sum[16];
    const __m512 log2e_scale = _mm512_set1_ps(scale * 1.44269504088896341f);
    int full = t / LANES * LANES; /* keys in whole vectors; then a partial one, then padding */
    for (int r = 0; r < 16; r++) {
        const float *s = scores + (size_t)r * tp;
        uint16_t *w = weights + (size_t)r * tp;
        __m512 m = _mm512_set1_ps(-INFINITY);
        for (int c = 0; c < full; c += LANES) m = _mm512_max_ps(m, _mm512_loadu_ps(s + c));
        if (full < t) m = _mm512_max_ps(m, _mm512_mask_loadu_ps(m, valid(full, t), s + full));
        /* e^(scale (s - max)) = 2^(s log2(e) scale - max log2(e) scale) */
        __m512 shift = _mm512_mul_ps(_mm512_set1_ps(_mm512_reduce_max_ps(m)), log2e_scale), sums = _mm512_setzero_ps();
        for (int c = 0; c < tp; c += LANES) {
            __m512 e = exp2_nonpositive(_mm512_fmsub_ps(_mm512_loadu_ps(s + c), log2e_scale, shift));
            if (c + LANES > t) e = _mm512_maskz_mov_ps(valid(c, t), e);
            sums = _mm512_add_ps(sums, e);
            _mm256_storeu_si256((__m256i *)(w + c), (__m256i)_mm512_cvtneps_pbh(e));
        }
        inv_sum[r] = 1.0f / _mm512_reduce_add_ps(sums);
    }
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    for (int s = 0; s < tp / 32; s++) {
        const uint16_t *b = values + (size_t)s * 4 * 512;
        _tile_loadd(4, weights + s * 32, tp * 2);
        tile_times_four(b);
    }
    float sums[16][HEAD_DIM] __attribute__((aligned(64)));
    _tile_stored(0, &sums[0][0], sizeof sums[0]);
    _tile_stored(1, &sums[0][16], sizeof sums[0]);
    _tile_stored(2, &sums[0][32], sizeof sums[0]);
    _tile_stored(3, &sums[0][48], sizeof sums[0]);
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < HEAD_DIM; c += LANES)
            _mm256_storeu_si256((__m256i *)(out + r * out_stride + c),
                                (__m256i)_mm512_cvtneps_pbh(_mm512_mul_ps(_mm512_load_ps(&sums[r][c]), _mm512_set1_ps(inv_sum[r]))));
}

/* q [batches * heads][tq][64], k, v [batches * heads][t][64] bf16 -> out [batches][tq][heads][64]
 * bf16. Returns 0 (and writes nothing) where dit_attention_tiled(64, t) is 0 or memory ran out. */
int dit_attention_bf16(const uint16_t *q, const uint16_t *k, const uint16_t *v, int batches, int heads, int tq, int t,
                       float scale, uint16_t *out) {
    if (!dit_attention_tiled(HEAD_DIM, t) || t < 1 || tq < 1) return 0;
    int tp = (t + 31) / 32 * 32, blocks = (tq + 15) / 16, bh = batches * heads;
    /* a head's query blocks split into parts when there are more threads than heads */
    int threads = omp_get_max_threads(), parts = threads > bh ? (threads + bh - 1) / bh : 1;
    if (parts > blocks) parts = blocks;
    size_t per_thread = (size_t)tp * HEAD_DIM * 2 * 2 + (size_t)16 * tp * (4 + 2) + 16 * HEAD_DIM * 2;
    int failed = 0;
#pragma omp parallel
    {
        char *scratch = aligned_alloc(64, (per_thread + 63) / 64 * 64);
        if (!scratch) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp barrier
        if (!failed) {
            uint32_t *keys = (uint32_t *)scratch;
            uint16_t *values = (uint16_t *)(keys + (size_t)tp * HEAD_DIM / 2);
            float *scores = (float *)(values + (size_t)tp * HEAD_DIM);
            uint16_t *weights = (uint16_t *)(scores + (size_t)16 * tp);
            uint16_t *qblock = weights + (size_t)16 * tp;
            struct tile_config config = {.palette = 1};
            for (int i = 0; i < 8; i++) config.rows[i] = 16, config.bytes_per_row[i] = 64;
            _tile_loadconfig(&config); /* oneDNN's kernels run on these threads with their own */
#pragma omp for schedule(static)
            for (int task = 0; task < bh * parts; task++) {
                int head = task / parts, part = task % parts;
                int first = blocks * part / parts, last = blocks * (part + 1) / parts;
                pack_keys(k + (size_t)head * t * HEAD_DIM, t, tp, keys);
                pack_values(v + (size_t)head * t * HEAD_DIM, t, tp, values);
                int b = head / heads, h = head % heads;
                for (int blk = first; blk < last; blk++) {
                    int row0 = blk * 16, rows = tq - row0 < 16 ? tq - row0 : 16;
                    memset(qblock, 0, 16 * HEAD_DIM * 2);
                    memcpy(qblock, q + ((size_t)head * tq + row0) * HEAD_DIM, (size_t)rows * HEAD_DIM * 2);
                    uint16_t *dst = out + (((size_t)b * tq + row0) * heads + h) * HEAD_DIM;
                    query_block(qblock, rows, keys, values, t, tp, scale, scores, weights, dst, (size_t)heads * HEAD_DIM);
                }
            }
            _tile_release();
        }
        free(scratch);
    }
    return !failed;
}

#else

int dit_attention_tiled(int dh, int t) { return 0; }

int dit_attention_bf16(const uint16_t *q, const uint16_t *k, const uint16_t *v, int batches, int heads, int tq, int t,
                       float scale, uint16_t *out) {
    return 0; /* dit_attention_tiled is 0 without AMX */
}

#endif
