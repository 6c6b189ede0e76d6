// Cosine similarity of every pair of vectors: the matrix the playground draws.

/** Euclidean norm; 0 for a zero vector. */
function norm(v: readonly number[]): number {
  let s = 0;
  for (const x of v) {
    s += x * x;
  }
  return Math.sqrt(s);
}

/**
 * `m[i][j]` = cosine of vectors i and j. Models may or may not normalise their output, so this
 * divides by both norms rather than taking the dot product alone; a zero vector gives 0.
 */
export function cosineMatrix(vectors: readonly (readonly number[])[]): number[][] {
  const norms = vectors.map(norm);
  return vectors.map((a, i) =>
    vectors.map((b, j) => {
      const d = norms[i]! * norms[j]!;
      if (d === 0) {
        return 0;
      }
      let dot = 0;
      for (let k = 0; k < a.length; k++) {
        dot += a[k]! * b[k]!;
      }
      return dot / d;
    }),
  );
}

/**
 * A fill colour for a cosine in [-1, 1]: white at 0, deepening to blue towards 1 and to red
 * towards -1 (text embeddings rarely go below 0, so most of the scale is the blue half).
 */
export function heatColor(cos: number): string {
  const t = Math.max(-1, Math.min(1, cos));
  const k = Math.abs(t);
  const [r, g, b] = t >= 0 ? [33, 102, 172] : [178, 24, 43];
  const mix = (c: number) => Math.round(255 + (c - 255) * k);
  return `rgb(${mix(r)}, ${mix(g)}, ${mix(b)})`;
}

/** Light text on dark cells, dark text on light ones. */
export function textColor(cos: number): string {
  return Math.abs(cos) > 0.55 ? "#fff" : "#1a1a1a";
}
