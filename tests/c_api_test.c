/* The C API used from C99: compiled as C with -std=c99 -pedantic, so any C++
   leaking into stackrt.h breaks the build. Returns 0 or a failing line number
   with a message in err. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "c_api/stackrt.h"

#define CHECK(cond, ...)                            \
  do {                                              \
    if (!(cond)) {                                  \
      snprintf(err, err_size, __VA_ARGS__);         \
      return __LINE__;                              \
    }                                               \
  } while (0)

struct collected {
  char text[4096];
  size_t len;
  int pieces;
};

static int on_piece(void* user, int32_t token, const char* piece, size_t len) {
  struct collected* c = (struct collected*)user;
  (void)token;
  if (c->len + len < sizeof c->text) {
    memcpy(c->text + c->len, piece, len);
    c->len += len;
    c->text[c->len] = '\0';
  }
  return ++c->pieces >= 10; /* stop after ten pieces */
}

int c_api_exercise(const char* model_path, char* err, size_t err_size) {
  stk_message msg;
  stk_model* model = NULL;
  stk_model_info info = STK_MODEL_INFO_INIT;
  stk_session_config cfg = STK_SESSION_CONFIG_INIT;
  stk_session* session = NULL;
  size_t bytes = 0, n = 0;
  void* arena;
  int32_t tokens[64];
  int32_t next = -1;
  struct collected col;
  stk_status st;

  CHECK(strcmp(stk_version(), STK_VERSION_STRING) == 0, "version %s", stk_version());
  CHECK(stk_version_number() == STK_VERSION_NUMBER, "version number");
  CHECK(strcmp(stk_status_string(STK_ERR_ARENA_TOO_SMALL), "arena too small") == 0, "status string");

  st = stk_model_open_file("/nonexistent/model.stk", NULL, &model, &msg);
  CHECK(st == STK_ERR_IO && model == NULL && strstr(msg.text, "/nonexistent/model.stk"), "missing file: %s", msg.text);

  st = stk_model_open_file(model_path, NULL, &model, &msg);
  CHECK(st == STK_OK, "open: %s", msg.text);
  CHECK(stk_model_get_info(model, &info, &msg) == STK_OK, "info: %s", msg.text);
  CHECK(info.dim == 64 && info.n_layers == 5 && info.vocab_size == 512 && info.n_tensors == 47, "hyper-parameters");

  {
    stk_session_config zeroed;
    memset(&zeroed, 0, sizeof zeroed);
    st = stk_session_arena_size(model, &zeroed, &bytes, &msg);
    CHECK(st == STK_ERR_INVALID_ARGUMENT && strstr(msg.text, "struct_size"), "zero struct_size: %s", msg.text);
  }
  cfg.context_length = 128;
  CHECK(stk_session_arena_size(model, &cfg, &bytes, &msg) == STK_OK, "arena size: %s", msg.text);
  arena = malloc(bytes);
  st = stk_session_init(model, &cfg, arena, bytes / 2, &session, &msg);
  CHECK(st == STK_ERR_ARENA_TOO_SMALL && session == NULL && strstr(msg.text, "need"), "short arena: %s", msg.text);
  CHECK(stk_session_init(model, &cfg, arena, bytes, &session, &msg) == STK_OK, "init: %s", msg.text);

  CHECK(stk_tokenize(model, "Once upon a time", 16, 1, tokens, 64, &n, &msg) == STK_OK, "tokenize: %s", msg.text);
  CHECK(n >= 2 && tokens[0] == info.bos_token, "tokens");
  CHECK(stk_session_eval(session, tokens, (uint32_t)n, NULL, &msg) == STK_OK, "eval: %s", msg.text);
  CHECK(stk_session_position(session) == n, "position");
  CHECK(stk_session_sample(session, &next, &msg) == STK_OK && next >= 0 && next < (int32_t)info.vocab_size,
        "sample");
  tokens[0] = 100000;
  st = stk_session_eval(session, tokens, 1, NULL, &msg);
  CHECK(st == STK_ERR_INVALID_ARGUMENT && strstr(msg.text, "100000"), "bad token: %s", msg.text);

  memset(&col, 0, sizeof col);
  CHECK(stk_generate(session, "", 100, NULL, on_piece, &col, NULL, &msg) == STK_OK, "generate: %s", msg.text);
  CHECK(col.pieces == 10 && strncmp(col.text, "Once upon a time", 16) == 0, "callback stop: '%s'", col.text);

  stk_session_free(session);
  free(arena);
  stk_model_close(model);
  return 0;
}
