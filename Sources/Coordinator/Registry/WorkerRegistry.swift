import Shared

/// Every worker the coordinator knows, by id, with a name index for the CLI
/// (people say `drain edge-3`, not an id).
struct WorkerRegistry: Sendable {
  private(set) var workers: [String: WorkerRecord] = [:]

  subscript(id: String) -> WorkerRecord? {
    get { workers[id] }
    set { workers[id] = newValue }
  }

  func find(_ nameOrID: String) -> WorkerRecord? {
    workers[nameOrID] ?? workers.values.first { $0.advert.name == nameOrID }
  }

  var online: [WorkerRecord] { workers.values.filter(\.online) }

  /// Workers whose heartbeats stopped for longer than the liveness window.
  func silent(now: Double, window: Double) -> [String] {
    workers.values.filter { $0.online && now - $0.lastSeen > window }.map(\.advert.id)
  }

  func sortedViews() -> [WorkerView] {
    workers.values.sorted { $0.advert.name < $1.advert.name }.map { $0.view() }
  }
}
