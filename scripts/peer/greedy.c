// Same-model check for the llama.cpp peer: loads a GGUF, evaluates the given prompt token ids,
// prints the greedy continuation (one id per line after "greedy:") and optionally writes the
// logits of the prompt's last position as raw little-endian fp32 [n_vocab] for a numeric diff.
// Usage: llama-greedy MODEL.gguf THREADS N_GEN IDS(1,2,3) [LOGITS_OUT]
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llama.h"

static int argmax(const float* v, int n) {
  int best = 0;
  for (int i = 1; i < n; ++i)
    if (v[i] > v[best]) best = i;
  return best;
}

int main(int argc, char** argv) {
  if (argc < 5) {
    fprintf(stderr, "usage: %s MODEL.gguf THREADS N_GEN IDS [LOGITS_OUT]\n", argv[0]);
    return 64;
  }
  int threads = atoi(argv[2]), n_gen = atoi(argv[3]);
  llama_token ids[4096];
  int n = 0;
  for (char* s = strtok(argv[4], ","); s && n < 4096; s = strtok(NULL, ",")) ids[n++] = atoi(s);
  llama_backend_init();
  struct llama_model_params mp = llama_model_default_params();
  struct llama_model* model = llama_model_load_from_file(argv[1], mp);
  if (!model) {
    fprintf(stderr, "%s: cannot load\n", argv[1]);
    return 3;
  }
  struct llama_context_params cp = llama_context_default_params();
  cp.n_ctx = n + n_gen + 8;
  cp.n_batch = cp.n_ubatch = n > 0 ? n : 1;
  cp.n_threads = cp.n_threads_batch = threads;
  struct llama_context* ctx = llama_init_from_model(model, cp);
  int n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(model));
  if (llama_decode(ctx, llama_batch_get_one(ids, n)) != 0) return 3;
  const float* logits = llama_get_logits_ith(ctx, -1);
  if (argc > 5) {
    FILE* f = fopen(argv[5], "wb");
    if (!f || fwrite(logits, sizeof(float), n_vocab, f) != (size_t)n_vocab || fclose(f) != 0) {
      fprintf(stderr, "%s: cannot write\n", argv[5]);
      return 3;
    }
  }
  printf("greedy:");
  for (int i = 0; i < n_gen; ++i) {
    llama_token t = argmax(logits, n_vocab);
    printf(" %d", t);
    if (i + 1 == n_gen) break;
    if (llama_decode(ctx, llama_batch_get_one(&t, 1)) != 0) return 3;
    logits = llama_get_logits_ith(ctx, -1);
  }
  printf("\n");
  llama_free(ctx);
  llama_model_free(model);
  return 0;
}
