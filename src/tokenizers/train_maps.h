// train_maps.h — the open-addressing hash maps the tokenizer trainers (train_spm.c,
// train_bytelevel.c) share: uint64 key -> int64 value, and byte string -> int64 value with the
// keys kept in one arena. Capacities are powers of two; a map doubles when half full, and
// reinserts in slot order, so slot and iteration orders depend only on the insertions made.
// Internal to src/tokenizers/ (training only, not in the runtime library). libc only.
#ifndef TERN_TRAIN_MAPS_H
#define TERN_TRAIN_MAPS_H
#include <stddef.h>
#include <stdint.h>

// uint64 key -> int64 value (key 0 = empty slot, so keys must be non-zero)
typedef struct {
    uint64_t *k;
    int64_t *v;
    size_t cap, n;
} tok_u64map;

void tok_u64map_init(tok_u64map *m, size_t cap); // cap: a power of two
void tok_u64map_free(tok_u64map *m);
// pointer to the value of key (created as init when create), or NULL; valid until the next create
int64_t *tok_u64map_slot(tok_u64map *m, uint64_t key, int create, int64_t init);

// byte string (non-empty: len 0 marks an empty slot) -> int64 value; key bytes live in arena at off
typedef struct {
    uint64_t *h;
    uint32_t *off, *len;
    int64_t *v;
    size_t cap, n;
    uint8_t *arena; // keys in insertion order: a new key is appended at arena + an - len
    size_t an, acap;
} tok_strmap;

void tok_strmap_init(tok_strmap *m, size_t cap); // cap: a power of two
void tok_strmap_free(tok_strmap *m);
// pointer to the value of s (created as init when create), or NULL; valid until the next create
int64_t *tok_strmap_slot(tok_strmap *m, const uint8_t *s, size_t len, int create, int64_t init);

#endif
