/* The paper's OpenSSL experiment with OpenSSL itself (src/bench/aes.ts): AES-128-CBC through
 * OpenSSL's EVP interface, a program built by the system's gcc against its static libcrypto
 * (Debian's libssl-dev):
 *
 *   gcc -static -O2 -I guests/sdk aes_openssl.c -o aes_openssl -lcrypto
 *
 * As a virtine (no arguments): the first call's input (fd 0) is the key, 16 bytes; it keys the
 * cipher, wipes the key from its buffer and takes the snapshot (wasp_snapshot()), so the key
 * schedule lives only in the snapshot. Every later call resumes there; its input is the chunk's IV
 * (the previous chunk's last ciphertext block) followed by the chunk (whole 16-byte blocks), and it
 * writes the chunk encrypted to fd 1.
 *
 * Natively (`aes_openssl native KEYHEX IVHEX CHUNK PASSES`), the baseline: the plaintext on stdin is
 * encrypted PASSES times, chunk by chunk with the same two EVP calls per chunk; the ciphertext of
 * the last pass goes to stdout, the nanoseconds of each pass to stderr, one a line.
 */
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <wasp.h>

#define BLOCK 16
#define MAX_CHUNK 65536

static size_t read_all(int fd, unsigned char *buf, size_t cap) {
  size_t n = 0;
  while (n < cap) {
    ssize_t r = read(fd, buf + n, cap - n);
    if (r <= 0) break;
    n += (size_t)r;
  }
  return n;
}

static int write_all(const unsigned char *buf, size_t len) {
  while (len > 0) {
    ssize_t w = write(1, buf, len);
    if (w <= 0) return -1;
    buf += w;
    len -= (size_t)w;
  }
  return 0;
}

/* One chunk: the IV set again (the key schedule kept), the chunk encrypted. */
static int encrypt_chunk(EVP_CIPHER_CTX *ctx, const unsigned char *iv, const unsigned char *in, int len, unsigned char *out) {
  int n = 0;
  if (EVP_EncryptInit_ex(ctx, NULL, NULL, NULL, iv) != 1 || EVP_EncryptUpdate(ctx, out, &n, in, len) != 1 || n != len) return -1;
  return 0;
}

static int hex16(const char *s, unsigned char *out) {
  if (strlen(s) != 2 * BLOCK) return -1;
  for (int i = 0; i < BLOCK; i++) {
    unsigned v;
    if (sscanf(s + 2 * i, "%2x", &v) != 1) return -1;
    out[i] = (unsigned char)v;
  }
  return 0;
}

static int native(char **argv) {
  unsigned char key[BLOCK], iv0[BLOCK];
  long chunk = atol(argv[4]), passes = atol(argv[5]);
  if (hex16(argv[2], key) || hex16(argv[3], iv0) || chunk < BLOCK || chunk % BLOCK || chunk > MAX_CHUNK || passes < 1) {
    fputs("usage: aes_openssl native KEYHEX IVHEX CHUNK PASSES < plaintext\n", stderr);
    return 2;
  }
  static unsigned char plain[1 << 20];
  size_t len = read_all(0, plain, sizeof plain);
  if (len == 0 || len % (size_t)chunk) {
    fputs("aes_openssl: the plaintext is not whole chunks\n", stderr);
    return 2;
  }
  unsigned char *cipher = malloc(len);
  EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
  if (!cipher || !ctx || EVP_EncryptInit_ex(ctx, EVP_aes_128_cbc(), NULL, key, iv0) != 1) return 3;
  EVP_CIPHER_CTX_set_padding(ctx, 0);
  for (long p = 0; p < passes; p++) {
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    const unsigned char *iv = iv0;
    for (size_t at = 0; at < len; at += (size_t)chunk) {
      if (encrypt_chunk(ctx, iv, plain + at, (int)chunk, cipher + at)) return 3;
      iv = cipher + at + chunk - BLOCK;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    fprintf(stderr, "%lld\n", (long long)(t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec));
  }
  return write_all(cipher, len) ? 4 : 0;
}

int main(int argc, char **argv) {
  /* No OPENSSL_cleanup at exit: freeing all of OpenSSL's state dirtied ~80 pages and made a futex
   * call in every virtine call (each page copied back by the reset) — the reset discards it anyway. */
  if (OPENSSL_init_crypto(OPENSSL_INIT_NO_ATEXIT, NULL) != 1) return 3;
  if (argc == 6 && strcmp(argv[1], "native") == 0) return native(argv);
  if (argc != 1) {
    fputs("usage: aes_openssl (a virtine: key, then IV and chunk per call on fd 0) | aes_openssl native KEYHEX IVHEX CHUNK PASSES\n", stderr);
    return 2;
  }
  static const unsigned char zero_iv[BLOCK];
  unsigned char key[BLOCK];
  if (read_all(0, key, sizeof key) != BLOCK) {
    fputs("aes_openssl: the first call's input is the 16-byte key\n", stderr);
    return 2;
  }
  EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
  if (!ctx || EVP_EncryptInit_ex(ctx, EVP_aes_128_cbc(), NULL, key, zero_iv) != 1) return 3;
  EVP_CIPHER_CTX_set_padding(ctx, 0);
  OPENSSL_cleanse(key, sizeof key);
  if (wasp_snapshot() == 0) return 0; /* the keying call (or no snapshot: nothing to resume) */
  static unsigned char in[BLOCK + MAX_CHUNK], out[MAX_CHUNK];
  size_t n = read_all(0, in, sizeof in);
  if (n < 2 * BLOCK || n % BLOCK) {
    fputs("aes_openssl: a call's input is a 16-byte IV and whole 16-byte blocks\n", stderr);
    return 2;
  }
  if (encrypt_chunk(ctx, in, in + BLOCK, (int)(n - BLOCK), out)) return 3;
  return write_all(out, n - BLOCK) ? 4 : 0;
}
