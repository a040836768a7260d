/* A program that initializes, snapshots, then answers: it sieves the primes below 2,000,000 once,
 * calls wasp_snapshot(), then answers the queries on standard input ("N" -> is N prime, "#K" -> the
 * K-th prime). In a virtine with snapshots, every call after the first starts after the sieve.
 * Build and run:
 *   ./dist/wasp build examples/linux/lookup.c -o /tmp/lookup
 *   printf '97\n#1000\n1999993\n' | ./dist/wasp invoke /tmp/lookup -i -
 */
#include <stdio.h>
#include <stdlib.h>
#include <wasp.h>

#define LIMIT 2000000
static unsigned char composite[LIMIT];
static unsigned primes[150000];
static unsigned count;

int main(void) {
  for (unsigned i = 2; i < LIMIT; i++) {
    if (composite[i]) continue;
    primes[count++] = i;
    for (unsigned long j = (unsigned long)i * i; j < LIMIT; j += i) composite[j] = 1;
  }
  int resumed = wasp_snapshot(); /* 0 here; 1 in every call that starts from the snapshot */
  char q[32];
  while (scanf("%31s", q) == 1) {
    if (q[0] == '#') {
      long k = atol(q + 1);
      if (k >= 1 && (unsigned long)k <= count) printf("prime #%ld is %u\n", k, primes[k - 1]);
      else printf("prime #%ld is out of range (1..%u)\n", k, count);
    } else {
      long n = atol(q);
      if (n >= 0 && n < LIMIT) printf("%ld is %s\n", n, n >= 2 && !composite[n] ? "prime" : "not prime");
      else printf("%ld is out of range (0..%d)\n", n, LIMIT - 1);
    }
  }
  fprintf(stderr, "lookup: %s\n", resumed ? "from the snapshot" : "sieved");
  return 0;
}
