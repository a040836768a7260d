/* Statistics of the numbers on standard input: malloc, strtod, qsort, libm and printf with floats.
 * Build and run:
 *   ./dist/wasp build examples/linux/stats.c -o /tmp/stats
 *   printf '3 1.5 4 1 5.25 9 2.5 6\n' | ./dist/wasp invoke /tmp/stats -i -
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static int by_value(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int main(void) {
  size_t n = 0, cap = 16;
  double *v = malloc(cap * sizeof *v);
  char word[64];
  if (!v) return 2;
  while (scanf("%63s", word) == 1) {
    char *end;
    double d = strtod(word, &end);
    if (*end != '\0') {
      fprintf(stderr, "stats: not a number: %s\n", word);
      return 1;
    }
    if (n == cap) {
      double *bigger = realloc(v, (cap *= 2) * sizeof *v);
      if (!bigger) return 2;
      v = bigger;
    }
    v[n++] = d;
  }
  if (n == 0) {
    fprintf(stderr, "stats: no numbers on standard input\n");
    return 1;
  }
  qsort(v, n, sizeof *v, by_value);
  double sum = 0, sq = 0;
  for (size_t i = 0; i < n; i++) sum += v[i];
  double mean = sum / (double)n;
  for (size_t i = 0; i < n; i++) sq += (v[i] - mean) * (v[i] - mean);
  double median = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
  printf("n=%zu min=%g max=%g mean=%.4f median=%g stddev=%.4f\n", n, v[0], v[n - 1], mean, median, sqrt(sq / (double)n));
  free(v);
  return 0;
}
