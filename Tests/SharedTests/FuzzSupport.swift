import Foundation
import Shared
import Testing

/// How long a fuzzer runs. In the unit suite: a fixed number of iterations from a fixed
/// seed, the same on every run. Under `scripts/fuzz`: `PINPOOL_FUZZ_SECONDS` of
/// iterations from `PINPOOL_FUZZ_SEED` (random when unset), and one line saying how
/// many ran and from which seed.
///
/// Every iteration draws from its own generator, made from the seed and the iteration
/// number, so a failure names the one input that failed: run again with
/// `PINPOOL_FUZZ_SEED=<seed> PINPOOL_FUZZ_ITERATION=<n> scripts/fuzz <name>` to run only
/// that iteration.
struct FuzzRun {
  let name: String
  let seed: UInt64
  let budget: Duration?
  let iterations: Int
  let only: Int?

  init(_ name: String, seed: UInt64, iterations: Int) {
    self.name = name
    let environment = ProcessInfo.processInfo.environment
    let seconds = environment["PINPOOL_FUZZ_SECONDS"].flatMap(Double.init).map { max(0.1, $0) }
    let givenSeed = environment["PINPOOL_FUZZ_SEED"].flatMap(Self.parseSeed)
    only = environment["PINPOOL_FUZZ_ITERATION"].flatMap { Int($0) }
    if let seconds {
      budget = .milliseconds(Int(seconds * 1000))
      self.seed = givenSeed ?? UInt64.random(in: 1...UInt64.max)
    } else {
      budget = nil
      self.seed = givenSeed ?? seed
    }
    self.iterations = iterations
  }

  static func parseSeed(_ text: String) -> UInt64? {
    text.hasPrefix("0x") ? UInt64(text.dropFirst(2), radix: 16) : UInt64(text)
  }

  var seedText: String { "0x" + String(seed, radix: 16) }

  func generator(iteration: Int) -> SplitMix64 {
    var mixer = SplitMix64(seed: seed ^ (UInt64(iteration) &* 0xD1B5_4A32_D192_ED03))
    return SplitMix64(seed: mixer.next())
  }

  /// Runs `body` once per iteration; returns how many ran. An error `body` throws (a
  /// `FuzzFailure` from `fuzzCheck`, or any other) is recorded with the seed and the
  /// iteration.
  @discardableResult
  func run(_ body: (inout SplitMix64, Int) throws -> Void) -> Int {
    let clock = ContinuousClock()
    let start = clock.now
    var count = 0
    var failures = 0
    func one(_ iteration: Int) {
      var rng = generator(iteration: iteration)
      do {
        try body(&rng, iteration)
      } catch {
        failures += 1
        Issue.record("fuzz \(name): \(error) (reproduce: \(reproduce(iteration)))")
      }
      count += 1
    }
    if budget != nil || only != nil {
      // Before the first input: a crash ends the process, and this seed reproduces it.
      say("fuzz \(name): seed \(seedText)\(only.map { ", iteration \($0)" } ?? "")")
    }
    if let only {
      one(only)
    } else if let budget {
      var iteration = 0
      // Stop at the first few failures: the rest of the budget would only repeat them.
      while clock.now - start < budget, failures < 5 {
        one(iteration)
        iteration += 1
      }
    } else {
      for iteration in 0..<iterations { one(iteration) }
    }
    if budget != nil || only != nil {
      let elapsed = clock.now - start
      let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
      let rate = seconds > 0 ? Int(Double(count) / seconds) : count
      say(
        "fuzz \(name): \(count) iterations in \(String(format: "%.1f", seconds)) s (\(rate)/s), "
          + "seed \(seedText)\(failures > 0 ? ", \(failures) FAILED" : "")")
    }
    return count
  }

  /// Unbuffered, so the line is out even if the next input crashes the process.
  private func say(_ line: String) { FileHandle.standardOutput.write(Data((line + "\n").utf8)) }

  func reproduce(_ iteration: Int) -> String {
    "PINPOOL_FUZZ_SEED=\(seedText) PINPOOL_FUZZ_ITERATION=\(iteration) scripts/fuzz \(name)"
  }
}

/// A property a fuzz input broke; thrown so the run stops counting it as a pass and
/// names the iteration.
struct FuzzFailure: Error, CustomStringConvertible {
  var description: String
}

/// Throws a `FuzzFailure` with `message` unless `condition` holds.
func fuzzCheck(_ condition: Bool, _ message: @autoclosure () -> String) throws(FuzzFailure) {
  if !condition { throw FuzzFailure(description: message()) }
}
