// rope.h — rotary position embedding angles, shared by training (ops_norm.c) and the runtime so
// both compute bit-identical cos/sin. NEOX pairing: element i (< D/2) rotates with i + D/2:
//   y[i]       = x[i] cos(a) - x[i+D/2] sin(a)
//   y[i+D/2]   = x[i] sin(a) + x[i+D/2] cos(a),    a = pos * theta^(-2i/D)
// libc/libm only.
#ifndef TERN_ROPE_H
#define TERN_ROPE_H
#include <math.h>

// cs[2*i] = cos, cs[2*i+1] = sin of the angle for position pos, i in [0, D/2)
static inline void tern_rope_angles(int pos, int D, float theta, float *cs) {
    for (int i = 0; i < D / 2; i++) {
        float freq = 1.0f / powf(theta, (float)(2 * i) / (float)D);
        float a = (float)pos * freq;
        cs[2 * i] = cosf(a);
        cs[2 * i + 1] = sinf(a);
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
