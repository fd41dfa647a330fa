/*
 * stackrt on bare metal: greedy generation from a model linked into flash.
 *
 * The packed model is a const array in flash (model.S, .incbin, 64-byte
 * aligned) opened zero-copy with stk_model_open_memory; the session lives in
 * a static arena whose size is fixed at compile time (STK_ARENA_BYTES). The
 * text goes to stdout, which the port sends over semihosting. It prints what
 * `stk run MODEL -n STEPS --temp 0` prints on stdout: the printable pieces,
 * then a newline. Statistics go to stderr.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "c_api/stackrt.h"

#ifndef STK_ARENA_BYTES
#error "define STK_ARENA_BYTES (bytes of the static session arena)"
#endif
#ifndef STK_STEPS
#define STK_STEPS 200
#endif
#ifndef STK_CONTEXT
#define STK_CONTEXT STK_STEPS
#endif

extern const uint8_t stk_model_start[];
extern const uint8_t stk_model_end[];

/* RAM, not zeroed at reset (the session initialises what it uses). */
static uint8_t g_arena[STK_ARENA_BYTES] __attribute__((section(".stackrt_arena"), aligned(64)));
/* stdout's buffer: static, so printing never calls malloc. */
static char g_stdout_buf[128];

/* The heap's break (ports/baremetal/syscalls.c): it must not move between
   session init and the end of generation. */
void* _sbrk(ptrdiff_t incr);

static int print_piece(void* user, int32_t token, const char* piece, size_t len) {
  (void)user;
  (void)token;
  if (stk_piece_is_printable(piece, len)) fwrite(piece, 1, len, stdout);
  return 0;
}

static int failed(const char* what, stk_status s, const stk_message* m) {
  fflush(stdout);
  fprintf(stderr, "baremetal: %s failed: %s: %s\n", what, stk_status_string(s), m->text);
  return 1;
}

int main(void) {
  const char* brk_start = (const char*)_sbrk(0);
  /* Set up stdio before the model and session, so nothing allocates later. */
  setvbuf(stdout, g_stdout_buf, _IOLBF, sizeof g_stdout_buf);
  setvbuf(stderr, NULL, _IONBF, 0);
  stk_message msg = {{0}};
  const size_t model_bytes = (size_t)(stk_model_end - stk_model_start);
  stk_model* model = NULL;
  stk_status s = stk_model_open_memory(stk_model_start, model_bytes, NULL, &model, &msg);
  if (s != STK_OK) return failed("stk_model_open_memory", s, &msg);

  stk_session_config cfg = STK_SESSION_CONFIG_INIT;
  cfg.context_length = STK_CONTEXT;
  cfg.n_threads = 1;
  cfg.max_batch = 1; /* an empty prompt is BOS only: no prefill batch needed */
  size_t need = 0;
  s = stk_session_arena_size(model, &cfg, &need, &msg);
  if (s != STK_OK) return failed("stk_session_arena_size", s, &msg);
  if (need > sizeof g_arena) {
    fprintf(stderr, "baremetal: arena too small: the session needs %lu bytes, the static arena has %lu: "
                    "rebuild with -DSTK_BAREMETAL_ARENA_BYTES=%lu\n",
            (unsigned long)need, (unsigned long)sizeof g_arena, (unsigned long)need);
    return 2;
  }
  stk_session* session = NULL;
  s = stk_session_init(model, &cfg, g_arena, sizeof g_arena, &session, &msg);
  if (s != STK_OK) return failed("stk_session_init", s, &msg);

  const char* brk_after_init = (const char*)_sbrk(0);
  stk_generate_stats stats = STK_GENERATE_STATS_INIT;
  s = stk_generate(session, "", STK_STEPS, NULL /* greedy */, print_piece, NULL, &stats, &msg);
  if (s != STK_OK) return failed("stk_generate", s, &msg);
  printf("\n");
  fflush(stdout);
  const char* brk_end = (const char*)_sbrk(0);
  if (brk_end != brk_after_init) {
    fprintf(stderr, "baremetal: the heap grew by %ld bytes after session init\n", (long)(brk_end - brk_after_init));
    return 3;
  }

  const unsigned long gen_ms = (unsigned long)(stats.generate_ns / 1000000u);
  fprintf(stderr,
          "baremetal: model %lu bytes in flash at %p, arena %lu of %lu bytes used, heap %ld bytes (all before init), "
          "%lu tokens in %lu ms\n",
          (unsigned long)model_bytes, (const void*)stk_model_start, (unsigned long)need,
          (unsigned long)sizeof g_arena, (long)(brk_end - brk_start),
          (unsigned long)stats.generated_tokens, gen_ms);
  stk_session_free(session);
  stk_model_close(model);
  return 0;
}
