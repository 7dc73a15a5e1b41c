import Shared

/// Every worker the coordinator knows, by id, with a name index for the CLI
/// (people say `drain edge-3`, not an id).
///
/// It also keeps what the scheduler places jobs on (the capacity of every worker that
/// can take a job now, and their names for its tie-break) up to date as records change.
/// Rebuilding that from every record for each pass had cost a pass over 1,000 workers
/// most of a millisecond, and a pass runs after every batch of messages.
struct WorkerRegistry: Sendable {
  private(set) var workers: [String: WorkerRecord] = [:]
  /// Registered, online, undrained workers with a connection, by id.
  private(set) var capacities: [String: WorkerCapacity] = [:]
  private(set) var names: [String: String] = [:]
  /// Changes whenever an entry of `capacities` does: a scheduling pass over capacities
  /// and a queue that are both unchanged since the last one cannot place anything new.
  private(set) var capacityVersion = 0

  subscript(id: String) -> WorkerRecord? {
    get { workers[id] }
    set {
      workers[id] = newValue
      let name = newValue?.advert.name
      if names[id] != name { names[id] = name }
      let capacity = newValue.flatMap { $0.schedulable ? $0.capacity : nil }
      if capacities[id] != capacity {
        capacities[id] = capacity
        capacityVersion &+= 1
      }
    }
  }

  func find(_ nameOrID: String) -> WorkerRecord? {
    workers[nameOrID] ?? workers.values.first { $0.advert.name == nameOrID }
  }

  /// Workers whose heartbeats stopped for longer than the liveness window.
  func silent(now: Double, window: Double) -> [String] {
    workers.values.filter { $0.online && now - $0.lastSeen > window }.map(\.advert.id)
  }

  func sortedViews() -> [WorkerView] {
    workers.values.sorted { $0.advert.name < $1.advert.name }.map { $0.view() }
  }
}
