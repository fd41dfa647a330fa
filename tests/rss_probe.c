/* Helper of bitstack_ram_test (Linux): opens MODEL from its file, runs a session with
   max_budget_bytes = BUDGET for 40 greedy tokens, and prints the kernel's
   accounting of this process's resident memory before freeing anything, in
   kB: VmHWM (peak), RssAnon (private memory: heap, arena) from
   /proc/self/status, and the resident pages of MODEL's own mapping from
   /proc/self/smaps. A separate small
   program, so that the figures hold nothing of the test process. */
#include <sys/personality.h>
#include <unistd.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "c_api/stackrt.h"

static int ignore_piece(void* user, int32_t token, const char* piece, size_t len) {
  (void)user, (void)token, (void)piece, (void)len;
  return 0;
}

static long status_kb(const char* key) {
  FILE* f = fopen("/proc/self/status", "r");
  char line[256];
  long v = -1;
  while (f != NULL && fgets(line, sizeof line, f) != NULL) {
    if (strncmp(line, key, strlen(key)) == 0) v = strtol(line + strlen(key), NULL, 10);
  }
  if (f != NULL) fclose(f);
  return v;
}

/* smaps starts each mapping with "START-END perms offset dev inode path". */
static int is_mapping_line(const char* line) {
  int dash = 0;
  const char* c = line;
  for (; *c != ' ' && *c != 0; ++c) {
    if (*c == '-') dash = 1;
    else if (!((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'f'))) return 0;
  }
  return dash && *c == ' ';
}

/* Sum of Rss over the mappings of `path` in /proc/self/smaps. */
static long mapped_file_kb(const char* path) {
  FILE* f = fopen("/proc/self/smaps", "r");
  char line[4096];
  long total = 0;
  int in_file = 0;
  const size_t n = strlen(path);
  while (f != NULL && fgets(line, sizeof line, f) != NULL) {
    if (is_mapping_line(line)) {
      size_t m = strlen(line);
      if (m > 0 && line[m - 1] == '\n') line[--m] = 0;
      in_file = m >= n && strcmp(line + m - n, path) == 0;
    } else if (in_file && strncmp(line, "Rss:", 4) == 0) {
      total += strtol(line + 4, NULL, 10);
    }
  }
  if (f != NULL) fclose(f);
  return total;
}

int main(int argc, char** argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: rss_probe MODEL BUDGET\n");
    return 2;
  }
  /* Address-space randomisation moves mappings across page and fault-around
     boundaries and makes resident figures vary by ~100 kB from run to run:
     run once more with it off (as `setarch -R` does). */
  int persona = personality(0xffffffff);
  if (persona != -1 && (persona & ADDR_NO_RANDOMIZE) == 0 && personality(persona | ADDR_NO_RANDOMIZE) != -1) {
    execv(argv[0], argv);
  }
  stk_message msg;
  stk_model* model = NULL;
  if (stk_model_open_file(argv[1], NULL, &model, &msg) != STK_OK) {
    fprintf(stderr, "%s\n", msg.text);
    return 1;
  }
  stk_session_config cfg = STK_SESSION_CONFIG_INIT;
  cfg.max_budget_bytes = strtoull(argv[2], NULL, 10);
  cfg.context_length = 64;
  size_t bytes = 0;
  stk_session* s = NULL;
  void* arena = NULL;
  if (stk_session_arena_size(model, &cfg, &bytes, &msg) != STK_OK || (arena = malloc(bytes)) == NULL ||
      stk_session_init(model, &cfg, arena, bytes, &s, &msg) != STK_OK) {
    fprintf(stderr, "%s\n", msg.text);
    return 1;
  }
  stk_sampler_config sc = STK_SAMPLER_CONFIG_INIT;
  sc.temperature = 0.0f;
  if (stk_generate(s, "", 40, &sc, ignore_piece, NULL, NULL, &msg) != STK_OK) {
    fprintf(stderr, "%s\n", msg.text);
    return 1;
  }
  char path[4096];
  if (realpath(argv[1], path) == NULL) return 1; /* smaps names files canonically */
  printf("%ld %ld %ld\n", status_kb("VmHWM:"), status_kb("RssAnon:"), mapped_file_kb(path));
  stk_session_free(s);
  free(arena);
  stk_model_close(model);
  return 0;
}
