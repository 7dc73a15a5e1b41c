/// A token bucket per client: `rate` submits a second on average, bursts of `burst`.
/// One submit call counts once however many array jobs it creates (their number has its
/// own limit), so "40 transcodes" is one request, not forty.
struct SubmitRateLimiter: Sendable {
  var rate: Double
  var burst: Double
  private var buckets: [String: (tokens: Double, at: Double)] = [:]

  init(rate: Double, burst: Double) {
    self.rate = rate
    self.burst = max(1, burst)
  }

  var isUnlimited: Bool { rate <= 0 }

  /// Takes a token for `client`, or says how long until one is free.
  mutating func take(_ client: String, now: Double) -> Double? {
    guard !isUnlimited else { return nil }
    var bucket = buckets[client] ?? (burst, now)
    bucket.tokens = min(burst, bucket.tokens + (now - bucket.at) * rate)
    bucket.at = now
    defer {
      buckets[client] = bucket
      // Full buckets carry no information; forget them so many one-off clients cost nothing.
      if buckets.count > 10_000 { buckets = buckets.filter { now - $0.value.at < burst / rate } }
    }
    guard bucket.tokens >= 1 else { return (1 - bucket.tokens) / rate }
    bucket.tokens -= 1
    return nil
  }
}
