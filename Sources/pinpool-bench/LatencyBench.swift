import CZeroMQ
import Foundation
import Shared

/// Benchmark 2: submit → assigned latency with many simulated workers and a deep queue.
///
/// WORKERS DEALER sockets register as workers with one 24 GiB GPU and one slot each and
/// keep heartbeating. QUEUED jobs that ask for 8 GPUs (so they fit nowhere and stay
/// queued) are submitted as arrays of at most `maxArrayJobs`. Then PROBES plain jobs are
/// submitted one at a time; each probe's latency runs from sending its `submit` to a
/// simulated worker receiving its `assign`. That worker answers at once with
/// progress, finished and cleanup, as `WorkerCore` does, so its slot frees.
/// Every socket is served by this one thread through one `zmq_poll`.
struct LatencyBench {
  var endpoint: String
  var coordinatorPID: Int32?
  var workerCount = 1000
  var queued = 100_000
  var probes = 2000
  var probePriority = 0
  /// Probes sent before the queue is filled, for comparison.
  var baselineProbes = 200
  var timeLimit = 300.0
  var arrayChunk = 10_000

  func run() throws(BenchError) {
    let started = monotonicSeconds()
    let deadline = started + timeLimit
    guard let context = zmq_ctx_new() else { throw .zmq("zmq_ctx_new") }
    zmq_ctx_set(context, ZMQ_MAX_SOCKETS, Int32(workerCount + 64))
    defer { zmq_ctx_term(context) }

    var state = PumpState(heartbeatInterval: 5)
    let runID = String(UInt32.random(in: 0...UInt32.max), radix: 16)
    let gpu = GPU(
      index: 0, vendor: .nvidia, model: "Simulated RTX 4090", vramTotal: 24 << 30, vramFree: 24 << 30)
    let host = HostInfo(
      cpuCores: 16, memoryTotal: 64 << 30, platform: "linux", arch: "x86_64", hostname: "sim")
    var workers: [SimWorker] = []
    workers.reserveCapacity(workerCount)
    for i in 0..<workerCount {
      let socket = try RawSocket(context: context, type: ZMQ_DEALER)
      socket.setOption(ZMQ_SNDHWM, 100_000)
      try socket.connect(endpoint)
      let name = String(format: "sim-%04d", i)
      let advert = WorkerAdvert(
        id: "\(name)-\(runID)", name: name, host: host, gpus: [gpu], diskFree: 1 << 40, slots: 1, labels: [:])
      workers.append(SimWorker(socket: socket, advert: advert))
    }
    let client = try RawSocket(context: context, type: ZMQ_DEALER)
    client.setOption(ZMQ_SNDHWM, 100_000)
    try client.connect(endpoint)
    defer {
      for worker in workers { worker.socket.close() }
      client.close()
    }
    let loop = EventLoop(sockets: workers.map(\.socket) + [client])
    let memoryIdle = coordinatorPID.flatMap(memoryOf(pid:))

    // One pass of the loop: wait up to `timeoutMs` for any socket, serve every message,
    // send the heartbeats that are due.
    var lastSweep = monotonicSeconds()
    func drain(_ index: Int) throws(BenchError) {
      if index == workers.count {
        while let frames = client.receive() { try state.clientMessage(frames) }
      } else {
        // Replies to what the worker sends are read on the next pass, whose sweep
        // or wake finds them; the sends themselves drain nothing.
        while let frames = workers[index].socket.receive() {
          try state.workerMessage(frames, worker: &workers[index])
        }
      }
    }
    func pump(_ timeoutMs: Int) throws(BenchError) {
      for index in loop.wait(timeoutMs) { try drain(index) }
      for index in state.takeSentTo() { try drain(index) }
      let now = monotonicSeconds()
      state.heartbeat(&workers, now: now)
      if now - lastSweep > 0.1 {
        lastSweep = now
        for index in 0...workers.count { try drain(index) }
      }
    }
    func wait(_ what: String, until done: () -> Bool) throws(BenchError) {
      while !done() {
        guard monotonicSeconds() < deadline else { throw .timeout(what) }
        try pump(20)
      }
    }

    // Registration.
    for worker in workers {
      worker.socket.send(
        WireEnvelope(.register, RegisterMessage(worker: worker.advert, activeAttempts: [])).frames)
    }
    try wait("registering \(workerCount) workers") { state.registeredCount == workerCount }
    state.startHeartbeats(now: monotonicSeconds())
    let registeredAt = monotonicSeconds()
    say(
      "registered \(workerCount) simulated workers in \(fmt(registeredAt - started)) s "
        + "(heartbeat every \(fmt(state.heartbeatInterval)) s)")

    // Every job ships the same one-step script; none of them runs.
    let bundle = JobBundle(files: [
      .init(
        path: "job.json", mode: 0o644,
        data: Data(#"{ "run": [ { "method": "shell.run", "params": { "message": "true" } } ] }"#.utf8))
    ]).encoded()
    // Probes, one at a time: latency from sending `submit` to a worker holding `assign`.
    var probeCounter = 0
    func probe(_ count: Int) throws(BenchError) -> [Double] {
      var latencies: [Double] = []
      latencies.reserveCapacity(count)
      for _ in 0..<count {
        if monotonicSeconds() > deadline { break }
        let k = probeCounter
        probeCounter += 1
        let name = "probe-\(k)"
        let requestID = "probe-\(k)"
        let request = SubmitRequest(
          requestID: requestID, name: name, entry: "job.json", args: .object(JSONObject()),
          requirements: Requirements(), priority: probePriority, retries: 0, timeoutSeconds: nil,
          artifacts: [], arrayIndices: nil)
        let frames = WireEnvelope(.submit, request, payload: [bundle]).frames
        let sentAt = monotonicSeconds()
        client.send(frames)
        state.noteSent(workers.count)
        try wait("probe \(k) to be assigned") {
          state.assignedAt[name] != nil && state.replies[requestID] != nil
        }
        latencies.append(state.assignedAt[name]! - sentAt)
        state.assignedAt[name] = nil
        state.replies[requestID] = nil
      }
      guard !latencies.isEmpty else { throw .timeout("no probe finished") }
      return latencies
    }

    // The same probes with nothing queued: what the queue depth adds.
    if baselineProbes > 0 {
      let empty = try probe(baselineProbes)
      say(
        "latency workers=\(workerCount) queued=0 probes=\(empty.count) priority=\(probePriority) "
          + Percentiles(empty).text)
    }

    // The deep queue: jobs needing 8 GPUs, which no simulated worker has.
    let queueStart = monotonicSeconds()
    var submittedQueue = 0
    var chunkIndex = 0
    while submittedQueue < queued {
      let count = min(arrayChunk, queued - submittedQueue)
      let requestID = "queue-\(chunkIndex)"
      let request = SubmitRequest(
        requestID: requestID, name: "deep", entry: "job.json", args: .object(JSONObject()),
        requirements: Requirements(gpus: 8), priority: 0, retries: 0, timeoutSeconds: nil, artifacts: [],
        arrayIndices: Array((submittedQueue + 1)...(submittedQueue + count)))
      client.send(WireEnvelope(.submit, request, payload: [bundle]).frames)
      state.noteSent(workers.count)
      try wait("submitting queued jobs (\(requestID))") { state.replies[requestID] != nil }
      submittedQueue += count
      chunkIndex += 1
    }
    let queuedAt = monotonicSeconds()
    say(
      "queued \(queued) jobs needing 8 GPUs in \(chunkIndex) array submits, \(fmt(queuedAt - queueStart)) s "
        + "(\(Int(Double(queued) / max(queuedAt - queueStart, 1e-9))) jobs/s)")
    let memoryQueued = coordinatorPID.flatMap(memoryOf(pid:))

    // What one idle pass of the loop costs this thread: a floor on the measurement.
    let pollStart = monotonicSeconds()
    for _ in 0..<100 { try pump(0) }
    let pollCost = (monotonicSeconds() - pollStart) / 100

    let probeStart = monotonicSeconds()
    let latencies = try probe(probes)
    let probesEnd = monotonicSeconds()
    let memoryEnd = coordinatorPID.flatMap(memoryOf(pid:))
    guard !latencies.isEmpty else { throw .timeout("no probe finished") }

    say(
      "probes \(latencies.count) over \(fmt(probesEnd - probeStart)) s, "
        + "an idle loop pass over \(workers.count + 1) sockets takes \(fmt(pollCost * 1e6)) us")
    if let memoryIdle { say("coordinator memory with workers only: \(mb(memoryIdle.rss)) MB RSS") }
    if let memoryQueued { say("coordinator memory after queueing: \(mb(memoryQueued.rss)) MB RSS") }
    let rssText = memoryEnd.map { " rss_mb=\(mb($0.rss)) peak_rss_mb=\(mb($0.peak))" } ?? ""
    say(
      "latency workers=\(workerCount) queued=\(queued) probes=\(latencies.count) priority=\(probePriority) "
        + Percentiles(latencies).text + rssText)
  }
}

/// One simulated worker: a DEALER socket and what it advertises.
private struct SimWorker {
  var socket: RawSocket
  var advert: WorkerAdvert
  var registered = false
}

/// What the loop has heard, and the heartbeat schedule.
private struct PumpState {
  var heartbeatInterval: Double
  var registeredCount = 0
  var replies: [String: Bool] = [:]
  var assignedAt: [String: Double] = [:]
  private var nextBeat = 0
  /// Sockets sent to since the last pass, to drain (a send can take their wake signal).
  private var sentTo: [Int] = []
  private var beatBase = Double.infinity

  init(heartbeatInterval: Double) { self.heartbeatInterval = heartbeatInterval }

  mutating func noteSent(_ index: Int) { sentTo.append(index) }

  mutating func takeSentTo() -> [Int] {
    defer { sentTo.removeAll(keepingCapacity: true) }
    return sentTo
  }

  mutating func startHeartbeats(now: Double) {
    beatBase = now
    nextBeat = 0
  }

  /// Spreads the heartbeats evenly over the interval, round robin, as workers started
  /// at different times would: worker i beats at base + (n + i / count) × interval.
  mutating func heartbeat(_ workers: inout [SimWorker], now: Double) {
    let count = workers.count
    while true {
      let round = Double(nextBeat / count)
      let due = beatBase + (round + Double(nextBeat % count) / Double(count)) * heartbeatInterval
      guard due <= now else { return }
      let worker = workers[nextBeat % count]
      worker.socket.send(
        WireEnvelope(
          .heartbeat,
          HeartbeatMessage(
            workerID: worker.advert.id, gpus: worker.advert.gpus, diskFree: worker.advert.diskFree)
        ).frames)
      sentTo.append(nextBeat % count)
      nextBeat += 1
    }
  }

  /// A reply it cannot read, or an error, ends the run: a coordinator of another
  /// protocol version answers every registration so, and waiting would only run out
  /// the time limit.
  mutating func workerMessage(_ frames: [Data], worker: inout SimWorker) throws(BenchError) {
    let now = monotonicSeconds()
    let envelope: WireEnvelope
    do throws(WireError) {
      envelope = try WireEnvelope(frames: frames)
    } catch {
      throw .refused(
        "\(worker.advert.name) cannot read a reply (\(error)); is the coordinator from the same build?")
    }
    let id = worker.advert.id
    switch envelope.type {
    case .error:
      throw BenchError(refusal: envelope)
    case .registered:
      if let message = try? envelope.decode(RegisteredMessage.self) {
        heartbeatInterval = message.heartbeatInterval
      }
      if !worker.registered {
        worker.registered = true
        registeredCount += 1
      }
    case .reregister:
      worker.socket.send(
        WireEnvelope(.register, RegisterMessage(worker: worker.advert, activeAttempts: [])).frames)
    case .assign:
      guard let job = (try? envelope.decode(AssignMessage.self))?.job else { return }
      assignedAt[job.name] = now
      // What a real worker reports for a job that ran one step and succeeded, in
      // WorkerCore's order: progress, finished (after its log), cleanup.
      worker.socket.send(
        WireEnvelope(
          .progress,
          ProgressMessage(
            workerID: id, jobID: job.jobID, attempt: job.attempt, state: .running, stepIndex: 0, stepCount: 1)
        ).frames)
      worker.socket.send(
        WireEnvelope(
          .finished,
          FinishedMessage(
            workerID: id, jobID: job.jobID, attempt: job.attempt, state: .succeeded, exitCode: 0, error: nil,
            locals: nil, lastLogSeq: 0)
        ).frames)
      worker.socket.send(
        WireEnvelope(
          .cleanup,
          CleanupMessage(
            workerID: id, jobID: job.jobID, attempt: job.attempt, state: .done, bytesFreed: 0,
            diskFreeAfter: worker.advert.diskFree, reason: nil)
        ).frames)
    default:
      break
    }
  }

  mutating func clientMessage(_ frames: [Data]) throws(BenchError) {
    guard let envelope = try? WireEnvelope(frames: frames) else { return }
    switch envelope.type {
    case .reply:
      if let id = (try? envelope.decode(RequestIDOnly.self))?.requestID { replies[id] = true }
    case .error:
      throw BenchError(refusal: envelope)
    default: break
    }
  }
}

extension BenchError {
  /// The coordinator's error reply, as the run's end.
  init(refusal envelope: WireEnvelope) {
    self = .refused((try? envelope.decode(ErrorReply.self))?.message ?? "unreadable error")
  }
}

func fmt(_ value: Double) -> String { String(format: "%.2f", value) }
func mb(_ bytes: Int64) -> String { String(format: "%.1f", Double(bytes) / 1_048_576) }

/// Nearest-rank percentiles of latencies in seconds, printed in milliseconds.
struct Percentiles {
  var text: String

  init(_ latencies: [Double]) {
    let sorted = latencies.sorted()
    func pct(_ p: Double) -> Double {
      sorted[min(sorted.count - 1, max(0, Int((p / 100 * Double(sorted.count)).rounded(.up)) - 1))] * 1000
    }
    let mean = latencies.reduce(0, +) / Double(latencies.count) * 1000
    text =
      "p50_ms=\(fmt(pct(50))) p90_ms=\(fmt(pct(90))) p99_ms=\(fmt(pct(99))) max_ms=\(fmt(pct(100))) "
      + "mean_ms=\(fmt(mean))"
  }
}

/// One line to stdout at once, unbuffered, so progress shows also when piped.
func say(_ line: String) { FileHandle.standardOutput.write(Data((line + "\n").utf8)) }
