/* A decode step's GPT-2 blocks in one call, for the few rows of a beam search, on our kernels.
 *
 * Why: at 3 rows a block's work is its four weight streams (panel_linear.c) and the attention
 * over its cache (decode_attention.c). Run as torch ops from Python, the ~10 small ops around
 * them per block (layer norms, gelu, residual adds, views) cost ~5 ms of a ~50 ms step here
 * (docs/performance.md), more than the work they do; here they are a few microseconds each, and
 * the gelu and the residual adds ride on the linear layers' output stores.
 *
 * Each block, on x [rows, d] in place (GPT-2, pre-norm):
 *   x += c_proj(attention(c_attn(ln_1(x))))      keys and values written at position `pos`
 *   x += mlp.c_proj(gelu_new(mlp.c_fc(ln_2(x))))
 * c_attn stores its keys and values straight into the cache: written by themselves after the
 * product, as 144 runs of 5 KB to cold memory a step, they took 0.4-1.6 ms of one thread's time
 * (store misses and first-touch page faults) while the other waited at the end of the layer; inside
 * the product each thread's few stores overlap its weight stream.
 * The weights are 64-column panels, fp32 or bf16 (the fast mode); everything else is fp32.
 * origin: the cache's row for each (row, position), as decode_attention.c. */

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <omp.h>

#include "panel_linear.h"
#include "vector_math.h"

int decode_attention_supported(int head_dim);
void decode_attention_split(const int32_t *origin, int rows, int max_len, int n, int parts, int *split);
void decode_attention_positions(const float *q, int rows, int heads, int head_dim, const float *kv, int batch,
                                int max_len, const int32_t *origin, int t0, int t1, float scale, float *partial,
                                float *scores);
void decode_attention_merge(const float *partials, int parts, int rows, int heads, int head_dim, float *out,
                            int lo, int hi);

struct block_weights {
    const float *ln1_weight, *ln1_bias, *ln2_weight, *ln2_bias;
    const void *qkv, *out, *fc, *proj; /* panels */
    const float *qkv_bias, *out_bias, *fc_bias, *proj_bias;
    float *kv; /* this layer's cache [2, batch, max_len, d] */
};

/* Row by row, with 16-lane partial sums: a scalar running sum over 1280 entries is a chain of
 * 1280 dependent adds, and a step has 48 of these layer norms. */
static void layer_norm(const float *x, int rows, int d, const float *weight, const float *bias, float eps, float *y) {
    for (int r = 0; r < rows; r++, x += d, y += d) {
        f32x16 acc = {0};
        int i = 0;
        for (; i + LANES <= d; i += LANES) acc += load16(x + i);
        float mean = sum16(acc);
        for (; i < d; i++) mean += x[i];
        mean /= d;
        f32x16 dev = {0};
        for (i = 0; i + LANES <= d; i += LANES) {
            f32x16 v = load16(x + i) - mean;
            dev += v * v;
        }
        float var = sum16(dev);
        for (; i < d; i++) var += (x[i] - mean) * (x[i] - mean);
        float inv = 1.0f / sqrtf(var / d + eps);
        for (i = 0; i < d; i++) y[i] = (x[i] - mean) * inv * weight[i] + bias[i];
    }
}

/* A run of panels that its owner reads front to back and another thread may take from the back
 * once its own run is done: front in the low 32 bits, back (one past the last) in the high. One
 * per (linear layer, thread), each on its own 64-byte line, so the owner's claims stay in its
 * own cache until a thief comes. */
typedef struct {
    uint64_t bounds;
    char pad[56];
} run_t;

static inline uint64_t bounds(uint32_t front, uint32_t back) { return (uint64_t)back << 32 | front; }

/* Claims the run's front panel (or, for a thief, its back one): its index, or -1 when none is left. */
static int claim(run_t *run, int from_back) {
    uint64_t now = __atomic_load_n(&run->bounds, __ATOMIC_RELAXED);
    for (;;) {
        uint32_t front = (uint32_t)now, back = (uint32_t)(now >> 32);
        if (front >= back) return -1;
        uint64_t next = from_back ? bounds(front, back - 1) : bounds(front + 1, back);
        if (__atomic_compare_exchange_n(&run->bounds, &now, next, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
            return from_back ? (int)back - 1 : (int)front;
    }
}

/* How the step's phases end: no barriers. A phase (a linear layer, or the attention's runs of
 * positions) is a list of items, each written once, by the first thread to finish computing it
 * (`written`: one flag per item), and a thread moves on when every item is written (`done`: the
 * items each thread wrote, per phase). A thread with nothing left to claim waits; if the phase is
 * still unfinished PATIENCE later, the thread that holds it is most likely not running (on this
 * VM the host takes a vCPU away for ~37 ms a few times a decode; docs/performance.md, ninth
 * session), so the waiting one computes the unfinished items itself. Both compute the same
 * floats: a phase's inputs change only once it is complete (the next phases wait for it), and an
 * item is written only if its computation started before that. */
enum { PHASES_PER_BLOCK = 5, ATTENTION = 1 }; /* c_attn, attention, c_proj, c_fc, mlp.c_proj */
#define PATIENCE 200e-6 /* seconds: ~3 panels of mlp.c_proj at the slowest bandwidth seen here */

struct step {
    unsigned char *written; /* [phases][max_items] */
    int *done;              /* [threads][done_stride]: each thread's counts on its own lines */
    int max_items, done_stride, used;
};

static inline void wrote(const struct step *s, int phase, int me) {
    __atomic_fetch_add(s->done + (size_t)me * s->done_stride + phase, 1, __ATOMIC_RELEASE);
}

/* (>=, not ==: an item written twice would be a bug the results show, not a hang) */
static int complete(const struct step *s, int phase, int items) {
    int sum = 0;
    for (int t = 0; t < s->used; t++) sum += __atomic_load_n(s->done + (size_t)t * s->done_stride + phase, __ATOMIC_ACQUIRE);
    return sum >= items;
}

static inline unsigned char *flag(const struct step *s, int phase, int item) {
    return s->written + (size_t)phase * s->max_items + item;
}

static inline void relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield");
#endif
}

/* One linear layer as a phase: its inputs, weights and outputs. */
struct linear {
    int bf16, m, k, n, epilogue, layer; /* layer: index among the step's linear layers (runs) */
    const float *x, *bias;
    const void *w;
    const struct outputs *out;
};

static int linear_panel(const struct linear *l, int p, unsigned char *gate) {
    return l->bf16 ? panel_linear_bf16_panel_gated(l->x, l->m, l->k, l->w, l->bias, l->out, l->n, l->epilogue, p, gate)
                   : panel_linear_f32_panel_gated(l->x, l->m, l->k, l->w, l->bias, l->out, l->n, l->epilogue, p, gate);
}

/* One attention as a phase: item i computes the partials of thread i's run of positions. */
struct attention {
    const float *q, *kv;
    const int32_t *origin;
    const int *split;
    float *partials; /* [used][rows][2 heads + d], shared */
    int rows, heads, head_dim, batch, max_len;
    float scale;
};

/* Item i of the attention, into this thread's `mine` and then, if first, into the shared partials. */
static int attention_item(const struct attention *a, int i, unsigned char *gate, float *mine, float *scores) {
    const size_t size = (size_t)a->rows * (2 * a->heads + a->heads * a->head_dim);
    decode_attention_positions(a->q, a->rows, a->heads, a->head_dim, a->kv, a->batch, a->max_len, a->origin,
                               a->split[i], a->split[i + 1], a->scale, mine, scores);
    if (!first_to_set(gate)) return 0;
    memcpy(a->partials + i * size, mine, sizeof(float) * size);
    return 1;
}

static int stall_thread = -1, stall_phase, stall_us, helped;

/* For tests: thread `thread` sleeps `us` microseconds after claiming its first item of `phase` in
 * the next step (then the hook is off); gpt_decode_helped() counts items computed by a thread that
 * waited for them, since the last call. */
void gpt_decode_stall_for_tests(int thread, int phase, int us) {
    stall_phase = phase;
    stall_us = us;
    __atomic_store_n(&stall_thread, thread, __ATOMIC_RELEASE);
}

int gpt_decode_helped(void) { return __atomic_exchange_n(&helped, 0, __ATOMIC_RELAXED); }

static void maybe_stall(int me, int phase) {
    if (__atomic_load_n(&stall_thread, __ATOMIC_ACQUIRE) == me && stall_phase == phase) {
        __atomic_store_n(&stall_thread, -1, __ATOMIC_RELAXED);
        struct timespec t = {stall_us / 1000000, (long)(stall_us % 1000000) * 1000};
        nanosleep(&t, NULL);
    }
}

/* Waits until every item of the phase is written, computing itself, after PATIENCE, those another
 * thread claimed but has not written. */
static void finish(const struct step *s, int phase, int items, const struct linear *l, const struct attention *a,
                   float *mine, float *scores, int me) {
    double since = omp_get_wtime();
    while (!complete(s, phase, items)) {
        if (omp_get_wtime() - since < PATIENCE) {
            relax();
            continue;
        }
        for (int i = 0; i < items; i++) {
            unsigned char *gate = flag(s, phase, i);
            if (__atomic_load_n(gate, __ATOMIC_ACQUIRE)) continue;
            if (l ? linear_panel(l, i, gate) : attention_item(a, i, gate, mine, scores)) {
                wrote(s, phase, me);
                __atomic_fetch_add(&helped, 1, __ATOMIC_RELAXED);
            }
        }
        since = omp_get_wtime();
    }
}

/* This thread's share of a linear layer, then the wait for the rest. Each thread reads its own run
 * of panels front to back (`runs`: one per thread and linear layer), then takes panels from the
 * back of the others' runs until none is left: with a fixed split, the thread whose share of the
 * bandwidth was smaller held the other at the end of the layer, 1.4-3.5 ms a step in all. A
 * panel is still read front to back and is one thread's in-order sum, so the results do not
 * depend on who took it. Consecutive layers' panels lie one after another in memory
 * (panel_linear.hold_in_huge_pages), so the runs alternate in direction from layer to layer: the
 * thread that read the end of one layer reads the start of the next, one stream across the
 * boundary. */
static void linear_phase(const struct step *s, int phase, const struct linear *l, run_t *runs, int me) {
    const int used = s->used, mine = l->layer & 1 ? used - 1 - me : me;
    for (int i = 0; i < used; i++) {
        run_t *run = runs + (size_t)l->layer * used + (mine + i) % used;
        for (int p; (p = claim(run, i > 0)) >= 0;) {
            maybe_stall(me, phase);
            if (linear_panel(l, p, flag(s, phase, p))) wrote(s, phase, me);
        }
    }
    finish(s, phase, (l->n + PANEL_COLUMNS - 1) / PANEL_COLUMNS, l, NULL, NULL, NULL, me);
}

/* x [rows, d] through `layers` blocks, in one parallel region, its phases ended as above. Each
 * thread normalizes x into its own buffer and merges the attention's partials into its own, so
 * neither needs the others. Returns 0, or -1 (attention's head_dim, or out of memory). */
int gpt2_decode_blocks(float *x, int rows, int layers, const struct block_weights *blocks, int d, int heads,
                       int inner, int bf16, float eps, int batch, int max_len, const int32_t *origin, int pos,
                       int n) {
    const int head_dim = d / heads, threads = omp_get_max_threads();
    if (!decode_attention_supported(head_dim)) return -1;
    const size_t own = (size_t)rows * d, scores_each = (size_t)heads * (n + 1), part = (size_t)2 * heads + d;
    const size_t partials_size = part * rows * threads;
    const int max_items = (inner > 3 * d ? inner : 3 * d) / PANEL_COLUMNS + threads + 1;
    const int phases = PHASES_PER_BLOCK * layers, done_stride = (phases + 15) / 16 * 16;
    /* q, hidden, partials; then each thread's normed x, attended, partial and scores */
    float *q = malloc(sizeof(float) * ((size_t)rows * (d + inner) + partials_size
                                       + (3 * own + part * rows + scores_each) * threads));
    run_t *runs = aligned_alloc(sizeof(run_t), sizeof(run_t) * layers * 4 * threads);
    unsigned char *claimed = calloc((size_t)layers * threads, 1); /* each attention's runs of positions */
    struct step s = {calloc((size_t)phases * max_items, 1), aligned_alloc(64, sizeof(int) * done_stride * threads),
                     max_items, done_stride, 0};
    if (!q || !runs || !claimed || !s.written || !s.done) {
        free(q);
        free(runs);
        free(claimed);
        free(s.written);
        free(s.done);
        return -1;
    }
    memset(s.done, 0, sizeof(int) * done_stride * threads);
    float *hidden = q + (size_t)rows * d, *partials = hidden + (size_t)rows * inner, *own_buffers = partials + partials_size;
    const float scale = 1.0f / sqrtf((float)head_dim);
    const size_t row_stride = (size_t)max_len * d, values = (size_t)batch * row_stride;
    const struct outputs to_x = {{x}, {(size_t)d}, d}, to_hidden = {{hidden}, {(size_t)inner}, inner};
#pragma omp parallel num_threads(threads)
    {
        const int me = omp_get_thread_num(), used = omp_get_num_threads();
        float *normed = own_buffers + (3 * own + part * rows + scores_each) * me, *attended = normed + own;
        float *mine = attended + own, *scores = mine + part * rows;
        int split[used + 1];
        decode_attention_split(origin, rows, max_len, n, used, split);
        /* each thread sets out its own runs before any other may take from them */
        const int widths[4] = {3 * d, d, inner, d};
        for (int l = 0; l < 4 * layers; l++) {
            const long panels = (widths[l % 4] + PANEL_COLUMNS - 1) / PANEL_COLUMNS;
            runs[(size_t)l * used + me].bounds = bounds(panels * me / used, panels * (me + 1) / used);
        }
#pragma omp single
        s.used = used;
        /* (the single's barrier: runs and s.used are set) */
        for (int i = 0; i < layers; i++) {
            const struct block_weights *b = blocks + i;
            const int phase = PHASES_PER_BLOCK * i;
            const struct outputs to_qkv = {{q, b->kv + (size_t)pos * d, b->kv + values + (size_t)pos * d},
                                           {(size_t)d, row_stride, row_stride}, d};
            const struct linear qkv = {bf16, rows, d, 3 * d, STORE, 4 * i, normed, b->qkv_bias, b->qkv, &to_qkv},
                                out = {bf16, rows, d, d, ADD, 4 * i + 1, attended, b->out_bias, b->out, &to_x},
                                fc = {bf16, rows, d, inner, STORE_GELU, 4 * i + 2, normed, b->fc_bias, b->fc, &to_hidden},
                                proj = {bf16, rows, inner, d, ADD, 4 * i + 3, hidden, b->proj_bias, b->proj, &to_x};
            const struct attention attention = {q, b->kv, origin, split, partials, rows, heads, head_dim, batch,
                                                max_len, scale};
            layer_norm(x, rows, d, b->ln1_weight, b->ln1_bias, eps, normed);
            linear_phase(&s, phase, &qkv, runs, me);
            /* its own run of positions, then any other no thread has started (its thread is behind) */
            for (int j = 0; j < used; j++) {
                const int item = (me + j) % used;
                if (!first_to_set(claimed + (size_t)i * used + item)) continue;
                if (!j) maybe_stall(me, phase + ATTENTION);
                if (attention_item(&attention, item, flag(&s, phase + ATTENTION, item), mine, scores))
                    wrote(&s, phase + ATTENTION, me);
            }
            finish(&s, phase + ATTENTION, used, NULL, &attention, mine, scores, me);
            decode_attention_merge(partials, used, rows, heads, head_dim, attended, 0, rows * heads);
            linear_phase(&s, phase + 2, &out, runs, me);
            layer_norm(x, rows, d, b->ln2_weight, b->ln2_bias, eps, normed);
            linear_phase(&s, phase + 3, &fc, runs, me);
            linear_phase(&s, phase + 4, &proj, runs, me);
        }
    }
    free(q);
    free(runs);
    free(claimed);
    free(s.written);
    free(s.done);
    return 0;
}
