/* examples/generate.c: the smallest useful program on the stackrt C API.
 *
 *   generate MODEL.stk [PROMPT]
 *
 * Opens a model, sizes an arena for it, generates up to 256 positions with
 * temperature 0.8 / top-p 0.9 and prints the text as it comes. Every call's
 * status is checked and its message printed on failure. */
#include <stdio.h>
#include <stdlib.h>

#include "c_api/stackrt.h"

static int print_piece(void* user, int32_t token, const char* piece, size_t len) {
  (void)user;
  (void)token;
  if (stk_piece_is_printable(piece, len)) fwrite(piece, 1, len, stdout);
  fflush(stdout);
  return 0; /* non-zero would stop generation */
}

static int check(stk_status st, const stk_message* msg, const char* what) {
  if (st == STK_OK) return 0;
  fprintf(stderr, "%s: %s (%s)\n", what, msg->text, stk_status_string(st));
  return 1;
}

int main(int argc, char** argv) {
  stk_message msg = {{0}};
  stk_model* model = NULL;
  stk_session* session = NULL;
  stk_session_config cfg = STK_SESSION_CONFIG_INIT;
  stk_sampler_config sampler = STK_SAMPLER_CONFIG_INIT;
  size_t arena_bytes = 0;
  void* arena = NULL;
  int rc = 1;

  if (argc < 2) {
    fprintf(stderr, "usage: %s MODEL.stk [PROMPT]\n", argv[0]);
    return 2;
  }
  if (check(stk_model_open_file(argv[1], NULL, &model, &msg), &msg, "open")) return 1;

  cfg.context_length = 256; /* a shorter context than the model's costs less arena */
  if (check(stk_session_arena_size(model, &cfg, &arena_bytes, &msg), &msg, "arena size")) goto done;
  arena = malloc(arena_bytes); /* on a device: a static buffer of this size */
  if (arena == NULL) goto done;
  if (check(stk_session_init(model, &cfg, arena, arena_bytes, &session, &msg), &msg, "session")) goto done;

  sampler.temperature = 0.8f;
  sampler.top_p = 0.9f;
  sampler.seed = 42;
  if (check(stk_generate(session, argc > 2 ? argv[2] : "", 256, &sampler, print_piece, NULL, NULL, &msg), &msg,
            "generate"))
    goto done;
  printf("\n(arena: %zu bytes)\n", arena_bytes);
  rc = 0;

done:
  stk_session_free(session);
  free(arena);
  stk_model_close(model);
  return rc;
}
