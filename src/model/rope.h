// rope.h — rotary position embedding angles, shared by training (ops_norm.c) and the runtime so
// both compute bit-identical cos/sin. NEOX pairing: element i (< D/2) rotates with i + D/2:
//   y[i]       = x[i] cos(a) - x[i+D/2] sin(a)
//   y[i+D/2]   = x[i] sin(a) + x[i+D/2] cos(a),    a = pos * theta^(-2i/D)
// libc/libm only.
#ifndef TERN_ROPE_H
#define TERN_ROPE_H
#include <math.h>

// cs[2*i] = cos, cs[2*i+1] = sin of the angle for position pos, i in [0, D/2).
// freq_div (NULL = none): per-frequency divisors (llama.cpp's `rope_freqs` tensor): frequency i is
// theta^(-2i/D) / freq_div[i].
static inline void tern_rope_angles_div(int pos, int D, float theta, const float *freq_div, float *cs) {
    for (int i = 0; i < D / 2; i++) {
        float freq = 1.0f / powf(theta, (float)(2 * i) / (float)D);
        if (freq_div) freq /= freq_div[i];
        float a = (float)pos * freq;
        cs[2 * i] = cosf(a);
        cs[2 * i + 1] = sinf(a);
    }
}

static inline void tern_rope_angles(int pos, int D, float theta, float *cs) {
    tern_rope_angles_div(pos, D, theta, (const float *)0, cs);
}

// LLaMA-3 frequency scaling (Hugging Face rope_type "llama3", llama.cpp's rope_freqs): with
// wavelength w_i = 2π / theta^(-2i/D) and L = original context,
//   w_i < L / high_freq_factor: unchanged (divisor 1)
//   w_i > L / low_freq_factor:  divided by factor
//   otherwise: blended, s = (L / w_i - low) / (high - low), frequency × ((1 - s) / factor + s).
// Writes the divisors div[D/2] (computed in double).
static inline void tern_rope_llama3_divisors(int D, float theta, float factor, float low_freq_factor,
                                             float high_freq_factor, int original_ctx, float *div) {
    const double pi = 3.14159265358979323846;
    double low_wavelen = (double)original_ctx / low_freq_factor, high_wavelen = (double)original_ctx / high_freq_factor;
    for (int i = 0; i < D / 2; i++) {
        double freq = 1.0 / pow((double)theta, (double)(2 * i) / (double)D);
        double wavelen = 2.0 * pi / freq;
        if (wavelen < high_wavelen) div[i] = 1.0f;
        else if (wavelen > low_wavelen) div[i] = factor;
        else {
            double s = ((double)original_ctx / wavelen - low_freq_factor) / ((double)high_freq_factor - low_freq_factor);
            div[i] = (float)(1.0 / ((1.0 - s) / factor + s));
        }
    }
}

// rotate one head vector x[D] in place by the angles cs (sign = +1 forward, -1 inverse)
static inline void tern_rope_rotate(float *x, int D, const float *cs, float sign) {
    int h = D / 2;
    for (int i = 0; i < h; i++) {
        float c = cs[2 * i], s = sign * cs[2 * i + 1];
        float x0 = x[i], x1 = x[i + h];
        x[i] = x0 * c - x1 * s;
        x[i + h] = x0 * s + x1 * c;
    }
}
#endif
