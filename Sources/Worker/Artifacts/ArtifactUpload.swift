import Foundation
import Shared

/// The upload of one attempt's artifacts, as a pure state machine: acknowledgements and
/// the clock in, `artifactBegin` and chunk requests out (the shell reads the bytes).
///
/// Files go one at a time. Each starts with `artifactBegin`, whose answer says how many
/// bytes the coordinator already holds (0, or more after a reconnect or a restart), and
/// continues with chunks from there, at most `window` unacknowledged at once. After any
/// reconnect `resume()` goes back to `artifactBegin` for the current file, so the
/// coordinator's own count decides where to continue. A checksum mismatch is retried
/// once from the start; any other refusal fails the upload for good.
struct ArtifactUpload: Sendable {
  enum Outcome: Sendable, Equatable {
    case completed
    case failed(String)
  }

  enum Request: Sendable, Equatable {
    case begin(ArtifactBeginMessage)
    /// Send `length` bytes of the file at `path` from `message.offset`.
    case chunk(ArtifactChunkMessage, path: String, length: Int)
  }

  enum Phase: Sendable, Equatable {
    /// `artifactBegin` for the current file is due (or sent, awaiting its answer).
    case begin(sent: Bool)
    case sending
  }

  let ref: AttemptRef
  let workerID: String
  let files: [ArtifactFile]
  let chunkSize: Int
  let window: Int
  /// Bytes per second, or nil for no cap (`pinpool worker --upload-rate`).
  let rate: Int64?
  /// With chunks or a begin unanswered this long, ask the coordinator where it stands.
  let stallTimeout: Double

  private(set) var index = 0
  private(set) var phase = Phase.begin(sent: false)
  /// Bytes of the current file the coordinator acknowledged holding.
  private(set) var acked: Int64 = 0
  /// Bytes of the current file sent.
  private(set) var sent: Int64 = 0
  /// End offsets of chunks sent and not yet acknowledged, in order.
  private(set) var inflight: [Int64] = []
  private(set) var outcome: Outcome?
  /// Bytes sent in all (resends included), for the rate cap.
  private(set) var bytesSent: Int64 = 0
  private var rateStart: Double?
  private var lastProgress: Double?
  private var retried: Set<Int> = []

  init(
    ref: AttemptRef, workerID: String, files: [ArtifactFile], rate: Int64? = nil, chunkSize: Int = 1 << 20,
    window: Int = 4, stallTimeout: Double = 15
  ) {
    self.ref = ref
    self.workerID = workerID
    self.files = files
    self.rate = rate.map { max(1, $0) }
    // A rate cap sends smaller chunks, about eight a second, so the cap is smooth.
    self.chunkSize = rate.map { max(4096, min(chunkSize, Int($0 / 8))) } ?? max(1, chunkSize)
    self.window = max(1, window)
    self.stallTimeout = stallTimeout
    if files.isEmpty { outcome = .completed }
  }

  var current: ArtifactFile? { index < files.count ? files[index] : nil }

  var totalBytes: Int64 { files.totalBytes }

  /// After a reconnect: anything in flight may be lost; ask where the coordinator stands.
  mutating func resume() {
    guard outcome == nil else { return }
    phase = .begin(sent: false)
    inflight = []
    sent = acked
    lastProgress = nil
  }

  /// The shell could not read the file any more (it vanished, or a disk error).
  mutating func readFailed(_ reason: String) {
    guard outcome == nil else { return }
    outcome = .failed(reason)
  }

  mutating func received(_ ack: ArtifactAckMessage, now: Double) {
    guard outcome == nil, let file = current, ack.name == file.name else { return }
    if let error = ack.error {
      if ack.retryable, !retried.contains(index) {
        retried.insert(index)
        acked = 0
        sent = 0
        inflight = []
        phase = .begin(sent: false)
      } else {
        outcome = .failed(error)
      }
      return
    }
    lastProgress = now
    if ack.complete {
      index += 1
      acked = 0
      sent = 0
      inflight = []
      phase = .begin(sent: false)
      if index >= files.count { outcome = .completed }
      return
    }
    let offset = min(max(0, ack.offset), file.size)
    switch phase {
    case .begin(sent: true):
      // The coordinator's count is where this file continues.
      phase = .sending
      acked = offset
      sent = offset
      inflight = []
    case .begin(sent: false):
      return
    case .sending:
      // An answer that repeats what is known (a late answer to a chunk sent before a
      // resync) changes nothing; a lost chunk is caught by the stall timeout.
      guard offset > acked else { return }
      acked = offset
      if let position = inflight.firstIndex(of: offset) {
        inflight.removeFirst(position + 1)
      } else {
        inflight = []
        sent = offset
      }
    }
  }

  /// What to send now. `connected` is false while the worker is not registered.
  mutating func pump(now: Double) -> [Request] {
    guard outcome == nil, let file = current else { return [] }
    switch phase {
    case .begin(sent: false):
      phase = .begin(sent: true)
      lastProgress = now
      return [
        .begin(
          ArtifactBeginMessage(
            workerID: workerID, jobID: ref.jobID, attempt: ref.attempt, name: file.name, size: file.size,
            sha256: file.sha256, index: index, count: files.count))
      ]
    case .begin(sent: true):
      if let last = lastProgress, now - last > stallTimeout { phase = .begin(sent: false) }
      return []
    case .sending:
      if !inflight.isEmpty, let last = lastProgress, now - last > stallTimeout {
        // Nothing acknowledged for a while: ask where the coordinator stands.
        resume()
        return []
      }
      var requests: [Request] = []
      while inflight.count < window, sent < file.size, rateAllows(now: now) {
        let length = Int(min(Int64(chunkSize), file.size - sent))
        requests.append(
          .chunk(
            ArtifactChunkMessage(
              workerID: workerID, jobID: ref.jobID, attempt: ref.attempt, name: file.name, offset: sent,
              size: file.size, sha256: file.sha256),
            path: file.path, length: length))
        if inflight.isEmpty { lastProgress = now }
        sent += Int64(length)
        inflight.append(sent)
        bytesSent += Int64(length)
      }
      return requests
    }
  }

  /// With a cap: no more sent, on average, than `rate` bytes per second since the first chunk.
  private mutating func rateAllows(now: Double) -> Bool {
    guard let rate else { return true }
    let start = rateStart ?? now
    rateStart = start
    return Double(bytesSent) <= Double(rate) * (now - start)
  }
}

extension [ArtifactFile] {
  var totalBytes: Int64 { reduce(0) { $0 + $1.size } }
}
