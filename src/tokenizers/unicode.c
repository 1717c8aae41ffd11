// unicode.c — see unicode.h. libc only.
#include "tokenizers/unicode.h"
#include "tokenizers/unicode_tables.h"

const char *tern_uc_version(void) { return TERN_UC_VERSION; }

const uint8_t tern_uc_ascii[128] = {
    // \t \n \v \f \r are White_Space; ' ' too; digits N; letters L
    [0x09] = TERN_UC_WS, [0x0A] = TERN_UC_WS, [0x0B] = TERN_UC_WS, [0x0C] = TERN_UC_WS, [0x0D] = TERN_UC_WS,
    [0x20] = TERN_UC_WS,
    ['0'] = TERN_UC_N, ['1'] = TERN_UC_N, ['2'] = TERN_UC_N, ['3'] = TERN_UC_N, ['4'] = TERN_UC_N,
    ['5'] = TERN_UC_N, ['6'] = TERN_UC_N, ['7'] = TERN_UC_N, ['8'] = TERN_UC_N, ['9'] = TERN_UC_N,
    ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1, ['H'] = 1, ['I'] = 1,
    ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1, ['Q'] = 1, ['R'] = 1,
    ['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1, ['Y'] = 1, ['Z'] = 1,
    ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1, ['h'] = 1, ['i'] = 1,
    ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1,
    ['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1,
};

unsigned tern_uc_class_slow(uint32_t cp) {
    size_t lo = 0, hi = TERN_UC_NRANGES; // ranges sorted and disjoint
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cp < TERN_UC_RANGES[mid].lo) hi = mid;
        else if (cp > TERN_UC_RANGES[mid].hi) lo = mid + 1;
        else return TERN_UC_RANGES[mid].bits;
    }
    return 0;
}

int tern_utf8_encode(uint32_t cp, uint8_t *b) {
    if (cp < 0x80) { b[0] = (uint8_t)cp; return 1; }
    if (cp < 0x800) { b[0] = (uint8_t)(0xC0 | (cp >> 6)); b[1] = (uint8_t)(0x80 | (cp & 63)); return 2; }
    if (cp < 0x10000) {
        b[0] = (uint8_t)(0xE0 | (cp >> 12));
        b[1] = (uint8_t)(0x80 | ((cp >> 6) & 63));
        b[2] = (uint8_t)(0x80 | (cp & 63));
        return 3;
    }
    b[0] = (uint8_t)(0xF0 | (cp >> 18));
    b[1] = (uint8_t)(0x80 | ((cp >> 12) & 63));
    b[2] = (uint8_t)(0x80 | ((cp >> 6) & 63));
    b[3] = (uint8_t)(0x80 | (cp & 63));
    return 4;
}

static inline int printable_byte(unsigned b) {
    return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

uint32_t tern_byte_char(uint8_t b) {
    if (printable_byte(b)) return b;
    // the k-th non-printable byte (in byte order) becomes U+0100 + k
    unsigned k = b <= 0x20 ? b : b <= 0xA0 ? 33 + (b - 0x7F) : 33 + 34; // 0x00-0x20: 33, 0x7F-0xA0: 34, 0xAD
    return 0x100 + k;
}

int tern_char_byte(uint32_t cp) {
    if (cp < 0x100) return printable_byte(cp) ? (int)cp : -1;
    if (cp < 0x100 + 33) return (int)(cp - 0x100);
    if (cp < 0x100 + 67) return (int)(cp - 0x100 - 33 + 0x7F);
    if (cp == 0x100 + 67) return 0xAD;
    return -1;
}
