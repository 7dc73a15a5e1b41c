import Foundation

// pinpool-bench: protocol-level benchmarks that need more peers than real processes
// can provide on one machine. See bench/README.md and bench/latency.sh.

let usage = """
  usage: pinpool-bench latency --coordinator EP [--pid PID] [--workers N] [--queued N]
                               [--probes N] [--probe-priority P] [--baseline-probes N]
                               [--time-limit SECONDS]

  Registers N simulated workers (one 24 GiB GPU, one slot each) with the coordinator at
  EP, sends --baseline-probes plain probe jobs one at a time with nothing queued, queues
  jobs that need 8 GPUs (they stay queued), then sends --probes probes one at a time and
  prints submit→assign latency percentiles for both and, with --pid, the coordinator's
  RSS. Defaults: 1000 workers, 100000 queued, 2000 probes, 200 baseline probes,
  priority 0, 300 s time limit.
  """

func parse(_ arguments: [String]) throws(BenchError) -> LatencyBench {
  guard arguments.first == "latency" else { throw .usage(usage) }
  var bench = LatencyBench(endpoint: "")
  var rest = arguments.dropFirst()
  func value(_ flag: String) throws(BenchError) -> String {
    guard let v = rest.popFirst() else { throw .usage("\(flag) needs a value\n\(usage)") }
    return v
  }
  func int(_ flag: String) throws(BenchError) -> Int {
    guard let n = Int(try value(flag)), n >= 0 else { throw .usage("\(flag) needs a whole number\n\(usage)") }
    return n
  }
  while let flag = rest.popFirst() {
    switch flag {
    case "--coordinator": bench.endpoint = try value(flag)
    case "--pid": bench.coordinatorPID = Int32(try int(flag))
    case "--workers": bench.workerCount = max(1, try int(flag))
    case "--queued": bench.queued = try int(flag)
    case "--probes": bench.probes = max(1, try int(flag))
    case "--probe-priority": bench.probePriority = try int(flag)
    case "--baseline-probes": bench.baselineProbes = try int(flag)
    case "--time-limit": bench.timeLimit = Double(try int(flag))
    case "-h", "--help": throw .usage(usage)
    default: throw .usage("unknown argument '\(flag)'\n\(usage)")
    }
  }
  guard !bench.endpoint.isEmpty else { throw .usage("--coordinator is required\n\(usage)") }
  return bench
}

do {
  try parse(Array(CommandLine.arguments.dropFirst())).run()
} catch {
  FileHandle.standardError.write(Data("pinpool-bench: \(error.description)\n".utf8))
  exit(1)
}
