/* The AMX tile unit, for the kernels that use it (panel_linear.c, dit_attention.c): HAVE_AMX where
 * -march=native enabled it, the tile configuration's layout, and Linux's permission to use it. */

#ifndef INDEX_TTS_AMX_H
#define INDEX_TTS_AMX_H

#include <stdint.h>

#if defined(__AMX_TILE__) && defined(__AMX_BF16__)
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>
#define HAVE_AMX 1
#endif

enum { TILE_K = 32, TILE_ROWS = 16, TILE_BYTES = 1024 };

/* ldtilecfg's 64 bytes (palette 1): each tile's rows and bytes per row. */
struct tile_config {
    uint8_t palette, start_row, reserved[14];
    uint16_t bytes_per_row[16];
    uint8_t rows[16];
};

#ifdef HAVE_AMX
/* tmm0..tmm3 += tmm4 times the four B tiles stored one after another from b (1 KB each), loaded
 * into tmm6 and tmm7 by turns: 64 output columns of the rows in tmm4. The tile configuration
 * must give tmm6 and tmm7 16 rows of 64 bytes. */
static inline __attribute__((always_inline)) void tile_times_four(const uint16_t *b) {
    _tile_loadd(6, b, 64);
    _tile_dpbf16ps(0, 4, 6);
    _tile_loadd(7, b + 512, 64);
    _tile_dpbf16ps(1, 4, 7);
    _tile_loadd(6, b + 1024, 64);
    _tile_dpbf16ps(2, 4, 6);
    _tile_loadd(7, b + 1536, 64);
    _tile_dpbf16ps(3, 4, 7);
}
#endif

/* Whether Linux lets this process use the tiles: ARCH_REQ_XCOMP_PERM for XFEATURE_XTILEDATA, asked
 * once per file that includes this (asking twice is harmless). */
static inline int amx_allowed(void) {
#ifdef HAVE_AMX
    static int state = -1;
    int s = __atomic_load_n(&state, __ATOMIC_ACQUIRE);
    if (s < 0) {
        s = syscall(SYS_arch_prctl, 0x1023, 18) == 0;
        __atomic_store_n(&state, s, __ATOMIC_RELEASE);
    }
    return s;
#else
    return 0;
#endif
}

#endif
