/// Tunables of the coordinator's core. The liveness defaults suit laptops on Wi-Fi:
/// a worker must miss 6 heartbeats 5 s apart (30 s) before its jobs are requeued,
/// which rides out a roaming hand-off or a short sleep but not a lid closed for lunch.
public struct CoordinatorSettings: Sendable {
  public var heartbeatInterval: Double = 5
  public var liveness: Int = 6
  /// How often a job is requeued after its worker vanished before it fails.
  public var maxLostRequeues: Int = 3
  /// After waiting this long, a job that fits nowhere reserves the worker it fits best,
  /// so small jobs stop backfilling it (see `Scheduler`).
  public var agingSeconds: Double = 600

  public init(heartbeatInterval: Double = 5, liveness: Int = 6, maxLostRequeues: Int = 3) {
    self.heartbeatInterval = heartbeatInterval
    self.liveness = liveness
    self.maxLostRequeues = maxLostRequeues
  }

  public var livenessWindow: Double { heartbeatInterval * Double(liveness) }
}
