import CZeroMQ
import Foundation
import Shared
import Testing

/// A real coordinator under a barrage of seeded hostile messages from raw DEALER
/// sockets: random frames, well-formed messages with hostile field values, and those
/// messages damaged (bits flipped, frames dropped, duplicated, swapped, oversized).
/// Afterwards it still answers, the jobs submitted before are intact, and its SQLite
/// store passes `PRAGMA integrity_check`, before and after a restart.
@Suite(.serialized)
struct HostileInputTests {
  /// 3,000 messages from a fixed seed; `PINPOOL_HOSTILE_MESSAGES` and `PINPOOL_FUZZ_SEED`
  /// (as in `scripts/fuzz`) run a longer or different barrage by hand.
  static let messages =
    ProcessInfo.processInfo.environment["PINPOOL_HOSTILE_MESSAGES"].flatMap { Int($0) } ?? 3000
  static let seed: UInt64 =
    ProcessInfo.processInfo.environment["PINPOOL_FUZZ_SEED"].flatMap {
      $0.hasPrefix("0x") ? UInt64($0.dropFirst(2), radix: 16) : UInt64($0)
    } ?? 0x5EED_2001

  @Test func aBarrageLeavesTheCoordinatorServingAndItsStoreIntact() throws {
    try withPool { pool in
      try pool.startCoordinator()
      try pool.startWorker("w")
      let script = try writeScript(
        #"{ "run": [ { "method": "log", "params": { "text": "before-the-barrage" } } ] }"#, in: pool.directory
      )
      let finished = try pool.submit([script, "--name", "finished-before"])
      let finishedView = try pool.waitForFinal(finished)
      #expect(finishedView.state == .succeeded)
      let finishedLog = try pool.logLines(finished)
      #expect(finishedLog.contains { $0.line.contains("before-the-barrage") })
      // No worker has this label, so the job stays queued whatever the barrage registers.
      let queued = try pool.submit([script, "--name", "queued-before", "--label", "pinpool-intact=yes"])
      pool.killWorker("w", signal: SIGTERM)

      let context = ZMQContext()
      var sockets: [ZMQSocket] = []
      defer { for socket in sockets { socket.close() } }
      for index in 0..<6 {
        let socket = try ZMQSocket(context: context, kind: .dealer)
        try socket.setOption(ZMQ_LINGER, Int32(0))
        try socket.setOption(ZMQ_SNDTIMEO, Int32(10_000))
        // Half the sockets pose as one identity each, as a worker does.
        if index % 2 == 0 { try socket.setOption(ZMQ_IDENTITY, string: "hostile-\(index)") }
        try socket.connect(pool.endpoint)
        sockets.append(socket)
      }
      var rng = SeededGenerator(seed: Self.seed)
      var errorReplies = 0
      var replies = 0
      // Jobs assigned to a hostile "worker": it then speaks about them as their owner
      // (progress, log lines, results with hostile values), which reaches deeper into the
      // coordinator than messages about jobs it does not hold. Which jobs it is given
      // depends on timing; the inputs are seeded, and the checks hold for any of them.
      var owned: [(socket: Int, ref: AttemptRef)] = []
      func drain() throws {
        for (index, socket) in sockets.enumerated() {
          while let frames = try socket.receive(dontWait: true) {
            replies += 1
            guard let envelope = try? WireEnvelope(frames: frames) else { continue }
            if envelope.type == .error { errorReplies += 1 }
            if envelope.type == .assign, let message = try? envelope.decode(AssignMessage.self) {
              owned.append((index, message.job.ref))
            }
          }
        }
      }
      for index in 0..<Self.messages {
        var socket = Int.random(in: 0..<sockets.count, using: &rng)
        var owner: AttemptRef?
        if let job = owned.randomElement(using: &rng), Bool.random(using: &rng) {
          (socket, owner) = (job.socket, job.ref)
        }
        let frames = HostileMessages.next(index: index, socket: socket, owner: owner, using: &rng)
        #expect(try sockets[socket].send(frames, dontWait: false), "message \(index) could not be sent")
        if index % 50 == 0 { try drain() }
      }
      // Each socket's messages arrive in order: the reply to a last `workers` request on
      // every socket means the coordinator has handled the whole barrage.
      for (index, socket) in sockets.enumerated() {
        try socket.setOption(ZMQ_RCVTIMEO, Int32(60_000))
        let id = "after-the-barrage-\(index)"
        #expect(
          try socket.send(WireEnvelope(.workers, WorkersRequest(requestID: id)).frames, dontWait: false))
        while true {
          let frames = try #require(try socket.receive(dontWait: false), "no answer on socket \(index)")
          replies += 1
          guard let envelope = try? WireEnvelope(frames: frames) else { continue }
          if envelope.type == .error { errorReplies += 1 }
          if envelope.type == .reply, (try? envelope.decode(RequestIDOnly.self))?.requestID == id { break }
        }
      }
      #expect(pool.cli(["workers", "--json"]).status == 0)
      try drain()
      #expect(pool.coordinator?.isRunning == true)
      #expect(
        errorReplies > Self.messages / 10, "\(errorReplies) error replies of \(replies), seed \(Self.seed)")
      #expect(pool.cli(["jobs", "--json"]).status == 0)

      try checkIntact(pool, finished: finished, finishedLog: finishedLog, queued: queued)

      // Stop it as systemd does, check the store offline, start it again on the same data.
      try stopCoordinator(pool)
      try checkIntegrity(pool.dataDirectory + "/pinpool.sqlite")
      try pool.startCoordinator()
      try checkIntact(pool, finished: finished, finishedLog: finishedLog, queued: queued)
    }
  }

  func checkIntact(_ pool: Pool, finished: String, finishedLog: [LogLineView], queued: String) throws {
    let done = try pool.status(finished)
    #expect(done.state == .succeeded)
    #expect(done.name == "finished-before")
    #expect(done.attempt == 1)
    #expect(try pool.logLines(finished) == finishedLog)
    let waiting = try pool.status(queued)
    #expect(waiting.state == .queued)
    #expect(waiting.name == "queued-before")
  }

  func stopCoordinator(_ pool: Pool) throws {
    let process = try #require(pool.coordinator)
    kill(process.processIdentifier, SIGTERM)
    process.waitUntilExit()
    #expect(process.terminationReason == .exit, "the coordinator did not exit cleanly on SIGTERM")
    #expect(process.terminationStatus == 0)
  }

  /// `PRAGMA integrity_check` and `foreign_key_check` with the sqlite3 shell, read-only.
  func checkIntegrity(_ path: String) throws {
    #expect(FileManager.default.fileExists(atPath: path))
    let sqlite = ["/usr/bin/sqlite3", "/usr/local/bin/sqlite3", "/opt/homebrew/bin/sqlite3"].first {
      FileManager.default.isExecutableFile(atPath: $0)
    }
    let shell = try #require(
      sqlite, "the sqlite3 shell is needed to check the store (apt-get install sqlite3)")
    for (pragma, expected) in [("PRAGMA integrity_check;", "ok"), ("PRAGMA foreign_key_check;", "")] {
      let process = Process()
      process.executableURL = URL(fileURLWithPath: shell)
      process.arguments = ["-readonly", path, pragma]
      let out = Pipe()
      process.standardOutput = out
      process.standardError = out
      try process.run()
      let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
      process.waitUntilExit()
      #expect(process.terminationStatus == 0, "\(pragma) \(text)")
      #expect(text.trimmingCharacters(in: .whitespacesAndNewlines) == expected, "\(pragma) \(text)")
    }
  }
}

/// The barrage's generator: the same seed, the same messages on every run.
typealias SeededGenerator = SplitMix64

/// The barrage: a third random frames, a third well-formed messages of every type with
/// hostile values, a third those messages damaged; a few oversized.
enum HostileMessages {
  static let strings = [
    "", "1", "2", "w", "hostile", "é😀", "\"", "\\u0000", "../../etc", "{{x}}", "-1", "1e400",
  ]

  static func next(index: Int, socket: Int, owner: AttemptRef?, using rng: inout SeededGenerator) -> [Data] {
    switch index % 3 {
    case 0:
      return (0..<Int.random(in: 1...5, using: &rng)).map { position in
        if position == 0, Bool.random(using: &rng) { return Data(WireEnvelope.protocolID.utf8) }
        if position == 1, Bool.random(using: &rng) {
          return Data(MessageType.allCases.randomElement(using: &rng)!.rawValue.utf8)
        }
        return Data(rng.bytes(Int.random(in: 0...40, using: &rng)))
      }
    case 1: return wellFormed(socket: socket, owner: owner, using: &rng).frames
    default:
      return damage(wellFormed(socket: socket, owner: owner, using: &rng).frames, index: index, using: &rng)
    }
  }

  static func string(_ rng: inout SeededGenerator) -> String { strings.randomElement(using: &rng)! }
  static func int(_ rng: inout SeededGenerator) -> Int {
    [0, 1, -1, 2, .max, .min, Int.random(in: -5...100_000, using: &rng)].randomElement(using: &rng)!
  }

  static func bundle(_ rng: inout SeededGenerator) -> Data {
    JobBundle(files: [
      JobBundle.File(
        path: "install.json", mode: 0o644, data: Data(rng.bytes(Int.random(in: 0...64, using: &rng))))
    ]).encoded()
  }

  /// Job ids "1" and "2" are the real jobs; hostile workers speak about them too. A
  /// cancel or drain names no real job or worker (those are a client's rights, not
  /// an attack on the store).
  static func wellFormed(socket: Int, owner: AttemptRef?, using rng: inout SeededGenerator) -> WireEnvelope {
    // Sockets 0, 2 and 4 have fixed identities; a worker's id is its socket's.
    let worker = "hostile-\(owner != nil ? socket : Int.random(in: 0..<3, using: &rng) * 2)"
    let job = owner?.jobID ?? ["1", "2", "3", "999", string(&rng)].randomElement(using: &rng)!
    let attempt = owner.map { Bool.random(using: &rng) ? $0.attempt : int(&rng) }
    // Half the values are plausible, so that some hostile workers register and get jobs.
    let plausible = Bool.random(using: &rng)
    let gpu = GPU(
      index: plausible ? 0 : int(&rng), vendor: .nvidia, model: string(&rng),
      vramTotal: plausible ? 24 << 30 : Int64(int(&rng)), vramFree: plausible ? 20 << 30 : Int64(int(&rng)))
    let refs = [AttemptRef(jobID: job, attempt: plausible ? 1 : int(&rng))]
    let type = MessageType.allCases.randomElement(using: &rng)!
    switch type {
    case .register:
      let advert = WorkerAdvert(
        id: worker, name: string(&rng) + worker,
        host: HostInfo(
          cpuCores: plausible ? 8 : int(&rng), memoryTotal: plausible ? 1 << 34 : Int64(int(&rng)),
          platform: "linux", arch: "x86_64", hostname: "h"
        ),
        gpus: Bool.random(using: &rng) ? [gpu] : [], diskFree: plausible ? 1 << 40 : Int64(int(&rng)),
        slots: plausible ? Int.random(in: 1...4, using: &rng) : int(&rng),
        labels: [string(&rng): string(&rng)])
      return WireEnvelope(type, RegisterMessage(worker: advert, activeAttempts: refs))
    case .heartbeat:
      return WireEnvelope(
        type,
        HeartbeatMessage(workerID: worker, gpus: [gpu], diskFree: Int64(int(&rng)), activeAttempts: refs))
    case .logBatch:
      let chunk = LogChunk((0..<Int.random(in: 0...3, using: &rng)).map { _ in (.stdout, 0, string(&rng)) })
      var bytes = chunk.bytes
      if Bool.random(using: &rng), !bytes.isEmpty { bytes.removeLast() }
      return WireEnvelope(
        type,
        LogBatchMessage(
          workerID: worker, jobID: job, attempt: attempt ?? int(&rng), firstSeq: int(&rng),
          count: Bool.random(using: &rng) ? chunk.count : int(&rng)),
        payload: Bool.random(using: &rng) ? [bytes] : [])
    case .progress:
      return WireEnvelope(
        type,
        ProgressMessage(
          workerID: worker, jobID: job, attempt: attempt ?? int(&rng),
          state: JobState.allCases.randomElement(using: &rng)!,
          stepIndex: int(&rng), stepCount: int(&rng), locals: [string(&rng): .string(string(&rng))]))
    case .finished:
      return WireEnvelope(
        type,
        FinishedMessage(
          workerID: worker, jobID: job, attempt: attempt ?? int(&rng),
          state: JobState.allCases.randomElement(using: &rng)!,
          exitCode: 1, error: string(&rng), locals: nil, lastLogSeq: int(&rng)))
    case .cleanup:
      return WireEnvelope(
        type,
        CleanupMessage(
          workerID: worker, jobID: job, attempt: attempt ?? int(&rng), state: .done,
          bytesFreed: Int64(int(&rng)),
          diskFreeAfter: Int64(int(&rng)), reason: nil))
    case .submit:
      let request = SubmitRequest(
        requestID: string(&rng), name: "hostile",
        entry: plausible || Bool.random(using: &rng) ? "install.json" : string(&rng),
        args: plausible || Bool.random(using: &rng) ? .object(JSONObject()) : .string(string(&rng)),
        // Without labels a job may go to a hostile worker; the real queued job needs a
        // label no hostile worker has.
        requirements: Requirements(
          gpus: plausible ? 0 : int(&rng) % 4, labels: plausible ? [:] : ["hostile": "yes"]),
        priority: plausible ? 0 : int(&rng),
        retries: plausible ? 1 : int(&rng) % 10,
        timeoutSeconds: plausible ? nil : Bool.random(using: &rng) ? -1 : nil,
        artifacts: [string(&rng)],
        arrayIndices: plausible || Bool.random(using: &rng)
          ? nil : (0..<Int.random(in: 0...3, using: &rng)).map { _ in int(&rng) })
      return WireEnvelope(
        type, request, payload: plausible || Bool.random(using: &rng) ? [bundle(&rng)] : [Data(rng.bytes(9))])
    case .status: return WireEnvelope(type, JobRequest(requestID: string(&rng), jobID: job))
    case .jobs:
      return WireEnvelope(
        type, JobsRequest(requestID: string(&rng), state: nil, worker: string(&rng), limit: int(&rng)))
    case .logs:
      return WireEnvelope(
        type, LogsRequest(requestID: string(&rng), jobID: job, since: int(&rng), limit: int(&rng)))
    case .workers: return WireEnvelope(type, WorkersRequest(requestID: string(&rng)))
    case .cancel:
      return WireEnvelope(
        type, CancelRequest(requestID: string(&rng), jobIDs: ["999999", string(&rng) + "x"]))
    case .drain, .undrain:
      return WireEnvelope(type, DrainRequest(requestID: string(&rng), worker: "no-such-" + string(&rng)))
    case .artifactBegin:
      return WireEnvelope(
        type,
        ArtifactBeginMessage(
          workerID: worker, jobID: job, attempt: attempt ?? int(&rng), name: string(&rng),
          size: plausible ? 4 : Int64(int(&rng)), sha256: string(&rng), index: int(&rng), count: int(&rng)))
    case .artifactChunk:
      return WireEnvelope(
        type,
        ArtifactChunkMessage(
          workerID: worker, jobID: job, attempt: attempt ?? int(&rng), name: string(&rng),
          offset: plausible ? 0 : Int64(int(&rng)), size: plausible ? 4 : Int64(int(&rng)),
          sha256: string(&rng)),
        payload: plausible ? [Data(rng.bytes(4))] : [])
    case .artifacts: return WireEnvelope(type, ArtifactsRequest(requestID: string(&rng), jobID: job))
    case .artifactFetch:
      return WireEnvelope(
        type,
        ArtifactFetchRequest(
          requestID: string(&rng), jobID: job, attempt: attempt ?? int(&rng), name: string(&rng),
          offset: Int64(int(&rng)), length: int(&rng)))
    case .registered, .assign, .logAck, .reportAck, .stop, .reregister, .artifactAck, .reply, .error:
      // Coordinator-to-peer messages sent to the coordinator.
      return WireEnvelope(type, ErrorReply(requestID: string(&rng), message: string(&rng)))
    }
  }

  static func damage(_ original: [Data], index: Int, using rng: inout SeededGenerator) -> [Data] {
    var frames = original
    // A few oversized messages: a 2 MiB header, a 3 MiB payload frame.
    if index % 500 == 2 { frames[2] = Data(#"{"requestID":""#.utf8) + Data(repeating: 0x78, count: 2 << 20) }
    if index % 500 == 5 { frames.append(Data(repeating: 0, count: 3 << 20)) }
    for _ in 0..<Int.random(in: 1...3, using: &rng) where !frames.isEmpty {
      let at = Int.random(in: 0..<frames.count, using: &rng)
      switch Int.random(in: 0..<6, using: &rng) {
      case 0:
        var bytes = [UInt8](frames[at])
        if !bytes.isEmpty {
          bytes[Int.random(in: 0..<bytes.count, using: &rng)] ^= 1 << UInt8.random(in: 0...7, using: &rng)
        }
        frames[at] = Data(bytes)
      case 1: frames[at] = frames[at].prefix(Int.random(in: 0...frames[at].count, using: &rng))
      case 2: frames.remove(at: at)
      case 3: frames.insert(frames[at], at: Int.random(in: 0...frames.count, using: &rng))
      case 4: frames.swapAt(at, Int.random(in: 0..<frames.count, using: &rng))
      default: frames[0] = Data("PINPOOL/2".utf8)  // the version before
      }
    }
    // A ZeroMQ message has at least one frame.
    return frames.isEmpty ? [Data()] : frames
  }
}
