/* One decode step's self-attention for the GPT's few rows (beam search), over its KV cache.
 *
 * Why our own kernel: in a beam-3 decode step each row has one query per head, so attention is a
 * read of the cached keys and values (3-5 MB per layer at 100-150 positions), evicted from the
 * caches by the weights streamed since the last step. torch's SDPA works head by head on
 * [B, H, T, Dh] and took ~7 ms of a ~55 ms step here (docs/performance.md). This kernel reads the
 * time-major cache, where one position's keys for all heads are contiguous: each thread takes a
 * run of positions costing as many reads as the others' (flash-decoding) and streams it front to
 * back, and the per-thread partial softmaxes are merged at the end.
 *
 * Layout of one layer's cache (index_tts/modules/kv_cache.py): kv [2, B, max_len, d], keys then
 * values, d = heads * head_dim, row r position t at (r * max_len + t) * d. Rows are cache rows
 * (beam order is the caller's).
 *
 * The arithmetic is softmax(q . k * scale) . v per head in fp32, as torch's SDPA, up to the
 * order of the sums, with exp to within ~1 ulp (vector_math.h). */

#include <stdlib.h>
#include <omp.h>

#include "vector_math.h"

/* s[0..n-1] -> exp(s - max) in place (n >= 1); returns the max, *sum gets the sum. */
static float exp_in_place(float *s, int n, float *sum) {
    float top = s[0];
    for (int t = 1; t < n; t++) top = s[t] > top ? s[t] : top;
    f32x16 total = {0};
    int t = 0;
    for (; t + LANES <= n; t += LANES) {
        f32x16 e = exp16(load16(s + t) - top);
        store16(s + t, e);
        total += e;
    }
    if (t < n) {  /* the tail through a padded copy; the padding is left out of the sum */
        float tail[LANES];
        for (int i = 0; i < LANES; i++) tail[i] = t + i < n ? s[t + i] - top : 0.0f;
        store16(tail, exp16(load16(tail)));
        for (int i = 0; t + i < n; i++) {
            s[t + i] = tail[i];
            total[i] += tail[i];
        }
    }
    *sum = sum16(total);
    return top;
}

/* Positions t0..t1-1 of one cache row, all heads: the flash-decoding partial for each head h,
 * top[h] = max_t s[h, t], total[h] = sum_t exp(s[h, t] - top[h]), acc[h] = sum_t exp(..) V[t, h],
 * with s[h, t] = q[h] . K[t, h] * scale. Position t of this row lives in cache row origin[t]
 * (rows share their common past, kv_cache.py); its keys (then values) for all heads are one
 * contiguous read, so a thread streams its positions front to back. */
static void attend_positions(const float *q, const float *keys, const float *values, const int32_t *origin,
                             size_t row_stride, int heads, int head_dim, int t0, int t1, float scale,
                             float *scores, float *top, float *total, float *acc) {
    const int vecs = head_dim / LANES, d = heads * head_dim, n = t1 - t0;
    for (int t = 0; t < n; t++) {
        const float *k = keys + origin[t0 + t] * row_stride + (size_t)(t0 + t) * d;
        for (int h = 0; h < heads; h++) {
            const float *kh = k + h * head_dim, *qh = q + h * head_dim;
            f32x16 dot = load16(qh) * load16(kh);
            for (int j = 1; j < vecs; j++) dot += load16(qh + j * LANES) * load16(kh + j * LANES);
            scores[(size_t)h * n + t] = sum16(dot) * scale;
        }
    }
    for (int h = 0; h < heads; h++) top[h] = n ? exp_in_place(scores + (size_t)h * n, n, &total[h]) : -1e30f;
    memset(acc, 0, sizeof(float) * d);
    for (int t = 0; t < n; t++) {
        const float *v = values + origin[t0 + t] * row_stride + (size_t)(t0 + t) * d;
        for (int h = 0; h < heads; h++) {
            f32x16 w = splat(scores[(size_t)h * n + t]);
            float *o = acc + h * head_dim;
            for (int j = 0; j < vecs; j++) store16(o + j * LANES, load16(o + j * LANES) + w * load16(v + h * head_dim + j * LANES));
        }
    }
    if (!n)
        for (int h = 0; h < heads; h++) total[h] = 0.0f;
}

static inline float exp1(float x) { return exp16(splat(x))[0]; }

static int reads_at(const int32_t *origin, int rows, int max_len, int t) {
    int reads = 0;
    for (int r = 0; r < rows; r++) {
        int q = 0;
        while (q < r && origin[(size_t)q * max_len + t] != origin[(size_t)r * max_len + t]) q++;
        reads += q == r; /* the first row to read this cache row at t */
    }
    return reads;
}

/* Where thread i's run of positions starts (split[i]) and ends (split[i + 1]), for `parts`
 * threads: runs of equal reads, not of equal length. A position costs one read per distinct cache
 * row among the rows' origins: a past the rows share is read once and then from the core's cache,
 * so an even split would give the thread holding the shared prompt a fraction of the other's work. */
void decode_attention_split(const int32_t *origin, int rows, int max_len, int n, int parts, int *split) {
    long total = 0, seen = 0;
    for (int t = 0; t < n; t++) total += reads_at(origin, rows, max_len, t);
    int i = 1;
    split[0] = 0;
    for (int t = 0; t < n && i < parts; t++) {
        seen += reads_at(origin, rows, max_len, t);
        while (i < parts && seen * parts >= total * i) split[i++] = t + 1;
    }
    while (i <= parts) split[i++] = n;
}

/* Every row's flash-decoding partial over positions t0..t1-1 (position t of row r read from cache
 * row origin[r * max_len + t]): partial [rows, 2 heads + d] (top [heads], total [heads], acc [d]
 * per row). scores: heads * (t1 - t0 + 1) floats. */
void decode_attention_positions(const float *q, int rows, int heads, int head_dim, const float *kv, int batch,
                                int max_len, const int32_t *origin, int t0, int t1, float scale, float *partial,
                                float *scores) {
    const int d = heads * head_dim;
    const size_t row_stride = (size_t)max_len * d, values_offset = (size_t)batch * row_stride;
    const size_t part = (size_t)2 * heads + d;
    for (int r = 0; r < rows; r++) {
        float *mine = partial + r * part;
        attend_positions(q + (size_t)r * d, kv, kv + values_offset, origin + (size_t)r * max_len, row_stride, heads,
                         head_dim, t0, t1, scale, scores, mine, mine + heads, mine + 2 * heads);
    }
}

/* out[r, h] for items r * heads + h in lo..hi-1, from the `parts` partials (decode_attention_positions
 * over consecutive runs of positions, part i at partials + i * rows * (2 heads + d)):
 * sum_i e^(top_i - top) acc_i / sum_i e^(top_i - top) total_i. */
void decode_attention_merge(const float *partials, int parts, int rows, int heads, int head_dim, float *out,
                            int lo, int hi) {
    const int d = heads * head_dim;
    const size_t part = (size_t)2 * heads + d;
    for (int item = lo; item < hi; item++) {
        int r = item / heads, h = item % heads;
        float top = -1e30f, total = 0.0f;
        for (int i = 0; i < parts; i++) {
            float m = partials[((size_t)i * rows + r) * part + h];
            top = m > top ? m : top;
        }
        f32x16 sum[8] = {{0}};  /* head_dim <= 128 */
        for (int i = 0; i < parts; i++) {
            const float *p = partials + ((size_t)i * rows + r) * part;
            float w = exp1(p[h] - top);
            total += w * p[heads + h];
            for (int j = 0; j < head_dim / LANES; j++) sum[j] += w * load16(p + 2 * heads + h * head_dim + j * LANES);
        }
        for (int j = 0; j < head_dim / LANES; j++)
            store16(out + (size_t)r * d + h * head_dim + j * LANES, sum[j] / total);
    }
}

int decode_attention_supported(int head_dim) { return head_dim % LANES == 0 && head_dim <= 8 * LANES; }

/* Writes each row's key and value at position `pos` (in its own cache row), then attends over
 * positions 0..n-1 on torch's threads; qkv [rows, 3d] is the c_attn output (q | k | v). Returns 0,
 * or -1 when head_dim is not a multiple of 16 up to 128 or memory ran out. */
int decode_attention(const float *qkv, int rows, int heads, int head_dim, float *kv, int batch,
                     int max_len, const int32_t *origin, int pos, int n, float scale, float *out) {
    if (!decode_attention_supported(head_dim)) return -1;
    const int threads = omp_get_max_threads(), d = heads * head_dim;
    const size_t row_stride = (size_t)max_len * d, scores_each = (size_t)heads * (n + 1);
    const size_t partials_size = ((size_t)2 * heads + d) * rows * threads;
    float *q = malloc(sizeof(float) * ((size_t)rows * d + partials_size + scores_each * threads));
    if (!q) return -1;
    float *partials = q + (size_t)rows * d, *scores = partials + partials_size;
    for (int r = 0; r < rows; r++) {
        const float *row = qkv + (size_t)r * 3 * d;
        memcpy(q + (size_t)r * d, row, sizeof(float) * d);
        memcpy(kv + r * row_stride + (size_t)pos * d, row + d, sizeof(float) * d);
        memcpy(kv + (size_t)batch * row_stride + r * row_stride + (size_t)pos * d, row + 2 * d, sizeof(float) * d);
    }
#pragma omp parallel num_threads(threads)
    {
        const int me = omp_get_thread_num(), used = omp_get_num_threads();
        const size_t part = (size_t)2 * heads + d;
        int split[used + 1];
        decode_attention_split(origin, rows, max_len, n, used, split);
        decode_attention_positions(q, rows, heads, head_dim, kv, batch, max_len, origin, split[me], split[me + 1], scale,
                                   partials + (size_t)me * rows * part, scores + scores_each * me);
#pragma omp barrier
        decode_attention_merge(partials, used, rows, heads, head_dim, out, rows * heads * me / used,
                               rows * heads * (me + 1) / used);
    }
    free(q);
    return 0;
}
