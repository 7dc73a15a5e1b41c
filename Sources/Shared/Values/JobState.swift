/// The job lifecycle of DESIGN.md. `lost` is recorded on the attempt whose worker went
/// silent; the job itself moves on to a new `queued` attempt or to `failed`.
public enum JobState: String, Sendable, Codable, CaseIterable {
  case queued, assigned, running, serving, succeeded, failed, cancelled, lost

  public var isFinal: Bool {
    switch self {
    case .succeeded, .failed, .cancelled: true
    default: false
    }
  }

  /// Holding a worker's slot and GPUs.
  public var isActive: Bool {
    switch self {
    case .assigned, .running, .serving: true
    default: false
    }
  }
}

public enum CleanupState: String, Sendable, Codable {
  case none, pending, done, kept
}

public enum WorkerState: String, Sendable, Codable {
  case online, draining, drained, offline
}
