import Shared

/// What one attempt holds on its worker from assignment until its cleanup is
/// reported: the workspace still occupies disk and the GPUs may still hold memory.
struct Holding: Sendable, Hashable {
  var gpuIndices: [Int]
  var disk: Int64
  /// Still executing (as opposed to finished, waiting for its cleanup report).
  var active: Bool
}

/// The coordinator's view of one worker.
struct WorkerRecord: Sendable {
  var advert: WorkerAdvert
  var peer: [UInt8]
  var lastSeen: Double
  var online: Bool
  var drained: Bool
  /// False for a worker restored from the store: until it registers again and says
  /// which attempts it still runs, nothing it sends is taken as current.
  var registered = true
  var holdings: [AttemptRef: Holding] = [:]

  var state: WorkerState {
    if !online { return .offline }
    if drained { return holdings.values.contains { $0.active } ? .draining : .drained }
    return .online
  }

  /// One the scheduler may place a job on now (it still needs a free slot).
  var schedulable: Bool { online && registered && !drained && !peer.isEmpty }

  var runningCount: Int { holdings.values.filter(\.active).count }

  var capacity: WorkerCapacity {
    let reservedDisk = holdings.values.reduce(Int64(0)) { $0 + $1.disk }
    return WorkerCapacity(
      gpus: advert.gpus,
      reservedGPUIndices: Set(holdings.values.flatMap(\.gpuIndices)),
      freeSlots: online && !drained ? advert.slots - holdings.count : 0,
      diskFree: advert.diskFree - reservedDisk,
      memoryTotal: advert.host.memoryTotal,
      labels: advert.labels, platform: advert.host.platform, reservedDisk: reservedDisk)
  }

  func view() -> WorkerView {
    WorkerView(
      id: advert.id, name: advert.name, state: state, gpus: advert.gpus.map(GPUView.init),
      diskFree: advert.diskFree, slots: advert.slots, running: runningCount,
      lastSeen: Timestamp.iso(lastSeen), labels: advert.labels, cpuCores: advert.host.cpuCores,
      memoryTotal: advert.host.memoryTotal)
  }
}
