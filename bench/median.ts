// The benchmarks' median: the middle sample (the upper one of the two for an even count).
export const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
