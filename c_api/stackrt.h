/*
 * stackrt.h — the stackrt C API.
 *
 * stackrt runs Llama-architecture language models packed into a .stk file
 * (see docs/format.md), straight from a mapping or from memory (flash), inside
 * an arena the caller provides. After stk_session_init returns, no call here
 * allocates memory until stk_session_free.
 *
 * Conventions
 *  - Every fallible call returns stk_status (STK_OK == 0, errors < 0) and takes
 *    an optional stk_message* as its last argument that receives one line
 *    naming the cause, e.g. "arena too small: need 1843200 bytes, have 1048576".
 *  - Option structs start with struct_size. Initialise them with their
 *    *_INIT macro (which sets struct_size); every other field defaults when
 *    zero. A struct from a newer header is accepted as long as the fields this
 *    library does not know are zero. Passing NULL means all defaults.
 *  - Handles are opaque. A model may back several sessions; a session is used
 *    by one thread at a time.
 *
 * Minimal use (error handling trimmed):
 *
 *   stk_model* model;
 *   stk_model_open_file("model.stk", NULL, &model, NULL);
 *   stk_session_config cfg = STK_SESSION_CONFIG_INIT;
 *   size_t bytes;
 *   stk_session_arena_size(model, &cfg, &bytes, NULL);
 *   void* arena = malloc(bytes);              // or a static buffer
 *   stk_session* s;
 *   stk_session_init(model, &cfg, arena, bytes, &s, NULL);
 *   stk_generate(s, "Once upon a time", 128, NULL, print_piece, NULL, NULL, NULL);
 *   stk_session_free(s);
 *   free(arena);
 *   stk_model_close(model);
 */
#ifndef STACKRT_H
#define STACKRT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Version ------------------------------------------------------------ */

#define STK_VERSION_MAJOR 0
#define STK_VERSION_MINOR 1
#define STK_VERSION_PATCH 0
#define STK_VERSION_NUMBER (STK_VERSION_MAJOR * 10000 + STK_VERSION_MINOR * 100 + STK_VERSION_PATCH)
#define STK_VERSION_STRING "0.1.0"

/* The library's version string and number, which may differ from the header's. */
const char* stk_version(void);
unsigned stk_version_number(void);

/* ---- Status and messages ------------------------------------------------ */

typedef enum stk_status {
  STK_OK = 0,
  STK_ERR_INVALID_ARGUMENT = -1, /* a NULL handle, a bad option value, a token outside the vocabulary */
  STK_ERR_IO = -2,               /* the file cannot be opened or mapped */
  STK_ERR_BAD_FORMAT = -3,       /* the model file is malformed */
  STK_ERR_UNSUPPORTED = -4,      /* valid, but needs something this build or port lacks */
  STK_ERR_ARENA_TOO_SMALL = -5,  /* the arena cannot hold the session */
  STK_ERR_OUT_OF_MEMORY = -6,    /* the port could not provide memory at open time */
  STK_ERR_CONTEXT_FULL = -7,     /* no room left in the context for these tokens */
  STK_ERR_CHECKSUM = -8,         /* a section's checksum does not match: the file is corrupted */
  STK_ERR_BUDGET = -9,           /* a RAM budget outside what the model can honour */
  STK_ERR_BUFFER_TOO_SMALL = -10 /* a caller-provided output buffer is too small */
} stk_status;

/* A short constant description of a status, e.g. "arena too small". */
const char* stk_status_string(stk_status status);

/* Receives the human-readable cause of a failure. Optional everywhere. */
typedef struct stk_message {
  char text[256];
} stk_message;

/* ---- Models --------------------------------------------------------------- */

typedef struct stk_model stk_model;

enum {
  /* Skip the CRC of the weight data at open (headers and tables are always
     checked). For large models in flash where boot time matters. */
  STK_MODEL_SKIP_DATA_CHECKSUMS = 1u << 0
};

typedef struct stk_model_options {
  uint32_t struct_size;
  uint32_t flags;              /* STK_MODEL_* flags */
  const char* tokenizer_path;  /* a llama2.c tokenizer.bin replacing the embedded tokenizer (file ports only) */
} stk_model_options;
#define STK_MODEL_OPTIONS_INIT {sizeof(stk_model_options), 0, NULL}

/* Opens and validates a model file (posix port: mmap, the weights section
   advised for 2 MiB pages: where the kernel and file system give them, e.g.
   Linux 6.16+ on ext4, decode streams the weights with fewer TLB misses). */
stk_status stk_model_open_file(const char* path, const stk_model_options* options, stk_model** out_model,
                               stk_message* msg);

/* Opens a model that is already in memory, e.g. linked into flash. Zero-copy:
   `data` must be 64-byte aligned and outlive the model. On Linux, a buffer
   2 MiB aligned and madvise(MADV_HUGEPAGE)d before it is filled decodes
   faster than one in 4 KiB pages (README, Speed). */
stk_status stk_model_open_memory(const void* data, size_t size, const stk_model_options* options,
                                 stk_model** out_model, stk_message* msg);

/* Closes a model. Its sessions must be freed first. NULL is ignored. */
void stk_model_close(stk_model* model);

typedef struct stk_model_info {
  uint32_t struct_size;
  uint32_t dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len;
  uint32_t n_tensors;
  int32_t bos_token, eos_token;
  uint64_t weight_bytes; /* all tensor data in the file */
  uint64_t file_bytes;
} stk_model_info;
#define STK_MODEL_INFO_INIT {sizeof(stk_model_info), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}

stk_status stk_model_get_info(const stk_model* model, stk_model_info* out_info, stk_message* msg);

typedef struct stk_tensor_info {
  uint32_t struct_size;
  char name[48];           /* e.g. "layers.3.ffn.w2" */
  const char* format_name; /* "f32", "q8", ... */
  uint32_t format;         /* weight-format code of docs/format.md */
  uint32_t rows, cols;     /* output and input features */
  int32_t layer;           /* -1 for global tensors */
  uint64_t bytes;
} stk_tensor_info;
#define STK_TENSOR_INFO_INIT {sizeof(stk_tensor_info), {0}, NULL, 0, 0, 0, 0, 0}

/* Describes tensor `index` (0 <= index < n_tensors), in file order. */
stk_status stk_model_tensor_info(const stk_model* model, uint32_t index, stk_tensor_info* out_info,
                                 stk_message* msg);

/* ---- Tokenizer ------------------------------------------------------------ */

/* Encodes UTF-8 text as llama2.c does (optional BOS, a dummy-prefix space,
   BPE merges by score, byte fallback). `capacity` must cover the text before
   merging: text_len + 3 tokens always suffices. */
stk_status stk_tokenize(const stk_model* model, const char* text, size_t text_len, int add_bos, int32_t* tokens,
                        size_t capacity, size_t* out_n_tokens, stk_message* msg);

/* The text of `token` when it follows `prev_token` (a leading space is dropped
   after BOS; byte tokens <0xXX> become that byte). Not NUL-terminated: the
   length is stored in *out_len. NULL for a token outside the vocabulary. */
const char* stk_token_piece(const stk_model* model, int32_t prev_token, int32_t token, size_t* out_len);

/* 0 for a piece that is a single unprintable, non-space byte (llama2.c's run
   skips those when printing); 1 otherwise. */
int stk_piece_is_printable(const char* piece, size_t len);

/* ---- Sessions ------------------------------------------------------------- */

typedef struct stk_session stk_session;

enum {
  /* Use the portable scalar kernels instead of the CPU's SIMD ones. Slower,
     but the arithmetic is then the same on every target (the runtime is built
     without floating-point contraction), so a host reproduces a device's
     tokens bit for bit: the bare-metal test compares against this. */
  STK_SESSION_SCALAR_KERNELS = 1u << 0
};

/* Stack. A stackrt call goes at most this deep into the calling thread's
   stack, below the caller's own frames, with any kernel set on any model.
   tests/stack_use_test.cpp holds evaluation and generation, the calls that
   run the kernels, to it with every kernel set and weight format. The
   deepest today are the AVX-512 sparse kernels (63 KiB); the scalar
   kernels, the only ones on bare metal, stay under 8 KiB on x86-64. The
   posix port starts its worker threads with a stack of this size plus
   64 KiB for the thread itself, so a libc's default (musl: 128 KiB) does
   not decide it. */
#define STK_STACK_USE_BYTES (96u * 1024u)

typedef struct stk_session_config {
  uint32_t struct_size;
  uint32_t context_length; /* positions kept in the KV cache; 0 = the model's seq_len */
  uint32_t n_threads;      /* including the caller's; 0 = 1 */
  uint32_t max_batch;      /* tokens evaluated per pass (prompt prefill); 0 = 16. Costs arena */
  uint64_t max_budget_bytes; /* BitStack models: the largest weight budget (fixed tensors + resident
                                blocks) the session can be raised to; its blocks live in the arena,
                                which grows accordingly. 0 = the full model. The session starts at it. */
  uint32_t flags;          /* STK_SESSION_* flags */
} stk_session_config;
#define STK_SESSION_CONFIG_INIT {sizeof(stk_session_config), 0, 0, 0, 0, 0}

/* The exact arena bytes stk_session_init needs for this model and config. */
stk_status stk_session_arena_size(const stk_model* model, const stk_session_config* config, size_t* out_bytes,
                                  stk_message* msg);

/* Creates a session inside `arena` (any alignment; caller-owned, must outlive
   the session) and starts its worker threads. No allocation happens from
   here until stk_session_free. */
stk_status stk_session_init(const stk_model* model, const stk_session_config* config, void* arena,
                            size_t arena_bytes, stk_session** out_session, stk_message* msg);

/* Stops the workers. The arena is the caller's again. NULL is ignored. */
void stk_session_free(stk_session* session);

/* Forgets all positions (the KV cache is reused from position 0). */
void stk_session_reset(stk_session* session);

/* The next position to be filled (= tokens evaluated since the last reset). */
uint32_t stk_session_position(const stk_session* session);

/* Evaluates tokens[0..n_tokens) at the next positions. If all_logits is not
   NULL it receives n_tokens x vocab_size logits, one row per token (for
   scoring text); otherwise only the last token's logits are computed. */
stk_status stk_session_eval(stk_session* session, const int32_t* tokens, uint32_t n_tokens, float* all_logits,
                            stk_message* msg);

/* The vocab_size logits of the last evaluated token (valid until the next eval). */
const float* stk_session_logits(const stk_session* session);

/* ---- Sampling and generation ---------------------------------------------- */

typedef struct stk_sampler_config {
  uint32_t struct_size;
  float temperature; /* 0 = greedy (argmax) */
  float top_p;       /* nucleus mass in (0, 1); 0 or >= 1 = sample the full distribution */
  uint64_t seed;     /* random stream; the same seed gives the same tokens */
} stk_sampler_config;
#define STK_SAMPLER_CONFIG_INIT {sizeof(stk_sampler_config), 0.0f, 0.0f, 0}

/* (Re)starts the session's sampler with this config (NULL = greedy). */
stk_status stk_session_set_sampler(stk_session* session, const stk_sampler_config* config, stk_message* msg);

/* Draws the next token from the last logits (which it may overwrite). */
stk_status stk_session_sample(stk_session* session, int32_t* out_token, stk_message* msg);

/* Called with each piece of text as it is produced; return non-zero to stop. */
typedef int (*stk_piece_callback)(void* user, int32_t token, const char* piece, size_t len);

typedef struct stk_generate_stats {
  uint32_t struct_size;
  uint32_t prompt_tokens;    /* including BOS */
  uint32_t generated_tokens; /* sampled tokens */
  uint64_t prompt_ns;        /* time to evaluate the prompt */
  uint64_t generate_ns;      /* time from the first sample to the end */
} stk_generate_stats;
#define STK_GENERATE_STATS_INIT {sizeof(stk_generate_stats), 0, 0, 0, 0}

/* Generates text as llama2.c's run does: BOS + prompt, then sampled tokens
   until `steps` positions are filled (prompt included; clamped to the context
   length) or BOS is sampled. The callback receives the prompt's pieces and
   then each generated piece, unfiltered. Resets the session first and starts
   the sampler from `sampler` (NULL = greedy). stats may be NULL.
   A generated piece's token is evaluated right after its callback returns,
   so the callback may call stk_session_set_budget (say, when the OS takes
   memory away): that token and the ones after it use the new blocks. */
stk_status stk_generate(stk_session* session, const char* prompt, uint32_t steps, const stk_sampler_config* sampler,
                        stk_piece_callback on_piece, void* user, stk_generate_stats* stats, stk_message* msg);

/* ---- RAM budget (BitStack models) ----------------------------------------- */

/* A BitStack model stores residual blocks in one global load order: any
   weight budget between the minimum (fixed tensors + every decomposed
   tensor's first block) and the full size is served by a prefix. For other
   models min == full == weight_bytes and n_blocks == 0. */
typedef struct stk_budget_info {
  uint32_t struct_size;
  uint32_t n_blocks;          /* residual blocks in the file */
  uint32_t min_blocks;        /* blocks of the minimum prefix */
  uint32_t n_bitstack_tensors;
  uint64_t fixed_bytes;       /* tensors outside the blocks (embedding, norms, classifier, scales) */
  uint64_t min_budget_bytes;
  uint64_t full_budget_bytes;
  uint64_t index_bytes;       /* RAM the open model holds for its block index (where
                                 each block is, what its header says), outside
                                 any budget; 0 for other models */
} stk_budget_info;
#define STK_BUDGET_INFO_INIT {sizeof(stk_budget_info), 0, 0, 0, 0, 0, 0, 0}

stk_status stk_model_budget_info(const stk_model* model, stk_budget_info* out_info, stk_message* msg);

typedef struct stk_block_info {
  uint32_t struct_size;
  int32_t layer;
  uint32_t role;           /* tensor role code of docs/format.md */
  uint32_t index;          /* position in its tensor's own block order */
  uint32_t rank;
  uint32_t reserved;
  const char* tensor_name; /* e.g. "layers.3.ffn.w2" */
  uint64_t bytes;          /* what the block adds to the weight bytes: the block
                              without its 64-byte header (the model's index keeps
                              the header's fields, see index_bytes) */
  uint64_t budget_through; /* weight budget of the prefix that ends with this block */
} stk_block_info;
#define STK_BLOCK_INFO_INIT {sizeof(stk_block_info), 0, 0, 0, 0, 0, NULL, 0, 0}

/* Describes block `index` (0 <= index < n_blocks) in global load order. */
stk_status stk_model_block_info(const stk_model* model, uint32_t index, stk_block_info* out_info, stk_message* msg);

typedef struct stk_budget_report {
  uint32_t struct_size;
  uint32_t blocks_loaded;   /* pushed by this call */
  uint32_t blocks_dropped;  /* popped by this call */
  uint32_t blocks_resident; /* after the call */
  uint64_t bytes_loaded;
  uint64_t bytes_dropped;
  uint64_t weight_bytes;    /* fixed tensors + resident blocks after the call */
} stk_budget_report;
#define STK_BUDGET_REPORT_INIT {sizeof(stk_budget_report), 0, 0, 0, 0, 0, 0}

/* Sets the weight budget: resident blocks become the longest prefix within
   `bytes` (clamped to the session's max_budget_bytes), copying in only the
   blocks between the old and new prefix or dropping them from the top.
   Callable between any two evaluations; the KV cache is kept. No allocation.
   Below the minimum: STK_ERR_BUDGET, naming the minimum, nothing changes.
   report may be NULL. */
stk_status stk_session_set_budget(stk_session* session, uint64_t bytes, stk_budget_report* report,
                                  stk_message* msg);

/* Called by a session before each read of model bytes into its arena: the
   blocks one budget increase adds, which lie in one contiguous range of the
   file from file_offset. `bytes` is what the session reads into its arena:
   that range without the blocks' 64-byte headers (64 bytes per block less).
   Return 0 to let the read go ahead; anything else cancels the read and the
   budget change (the session keeps its blocks, the call fails with
   STK_ERR_IO naming the code). For accounting and simulation: `stk sim`
   counts the device's reads with it and refuses reads beyond its RAM limit. */
typedef int (*stk_read_hook)(void* user, uint64_t file_offset, uint64_t bytes);

/* Installs the session's read hook, or removes it when hook is NULL. Reads
   made by stk_session_init (the blocks of max_budget_bytes) precede any hook. */
stk_status stk_session_set_read_hook(stk_session* session, stk_read_hook hook, void* user, stk_message* msg);

#ifdef __cplusplus
}
#endif

#endif /* STACKRT_H */
