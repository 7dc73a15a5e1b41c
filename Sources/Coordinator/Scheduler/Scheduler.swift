import Shared

/// One scheduling decision.
struct Assignment: Sendable, Hashable {
  var jobID: Int64
  var workerID: String
  var gpuIndices: [Int]
}

/// Matches queued jobs to workers. Pure: given the queue, the jobs and the workers'
/// capacities, it returns assignments; the core applies them.
///
/// Policy: jobs are served by priority, then FIFO. A job that fits no worker now does
/// not block the jobs behind it (backfill): the scan moves on. Among workers a job
/// fits, the tightest fit on VRAM wins, then the least loaded, then the name, so the
/// choice is deterministic.
///
/// Aging: backfill alone can starve a big job — small jobs keep taking each GPU as it
/// frees, and two are never free at once. A job that has waited longer than
/// `agingSeconds` therefore reserves the worker it fits best when idle: nothing behind
/// it is placed there, so that worker drains and the big job starts when it is empty.
enum Scheduler {
  static func plan(
    queue: JobQueue, jobs: [Int64: LiveJob], capacities: [String: WorkerCapacity],
    names: [String: String], now: Double = 0, agingSeconds: Double = .infinity
  ) -> [Assignment] {
    var capacities = capacities
    // Workers held for an aged job further up the queue.
    var reserved: Set<String> = []
    var result: [Assignment] = []
    var freeSlots = capacities.values.reduce(0) { $0 + max(0, $1.freeSlots) }
    // Jobs of one class share their requirements: when one fits nowhere, the scan skips
    // the rest of its class in one step. Jobs without a class (number 0) are remembered
    // by their requirements instead, so each such shape is still tried once a pass.
    var unplaceable: Set<Requirements> = []
    queue.scan { key in
      if freeSlots == 0 { return .stop }
      let classified = key.requirementClass != 0
      let skip: JobQueue.ScanStep = classified ? .skipClass : .next
      guard let job = jobs[key.id] else { return .next }
      if !classified, unplaceable.contains(job.requirements) { return .next }
      var best: (id: String, placement: Placement, load: Int)?
      for (workerID, capacity) in capacities where capacity.freeSlots > 0 && !reserved.contains(workerID) {
        guard case .success(let placement) = Matching.place(job.requirements, on: capacity) else { continue }
        let load = -capacity.freeSlots
        if let current = best {
          let a = (placement.vramSlack, load, names[workerID] ?? workerID)
          let b = (current.placement.vramSlack, current.load, names[current.id] ?? current.id)
          if a >= b { continue }
        }
        best = (workerID, placement, load)
      }
      guard let best else {
        if now - job.submittedAt > agingSeconds,
          let hold = idealWorker(for: job, capacities, names, except: reserved)
        {
          // The oldest aged job of a shape holds one worker; the rest of its class waits behind it.
          reserved.insert(hold)
          return skip
        }
        if !classified { unplaceable.insert(job.requirements) }
        return skip
      }
      result.append(Assignment(jobID: job.id, workerID: best.id, gpuIndices: best.placement.gpuIndices))
      capacities[best.id]!.freeSlots -= 1
      capacities[best.id]!.reservedGPUIndices.formUnion(best.placement.gpuIndices)
      capacities[best.id]!.diskFree -= job.requirements.disk ?? 0
      capacities[best.id]!.reservedDisk += job.requirements.disk ?? 0
      freeSlots -= 1
      return .next
    }
    return result
  }

  /// The worker an aged job fits best once everything on it is done.
  private static func idealWorker(
    for job: LiveJob, _ capacities: [String: WorkerCapacity], _ names: [String: String], except: Set<String>
  ) -> String? {
    var best: (String, Int64)?
    for (workerID, capacity) in capacities where !except.contains(workerID) {
      guard case .success(let placement) = Matching.place(job.requirements, on: capacity.whenIdle) else {
        continue
      }
      if let current = best,
        (placement.vramSlack, names[workerID] ?? workerID) >= (current.1, names[current.0] ?? current.0)
      {
        continue
      }
      best = (workerID, placement.vramSlack)
    }
    return best?.0
  }

  /// One line saying why a queued job waits, for `status`.
  static func waitReason(
    for requirements: Requirements, workers: [WorkerRecord]
  ) -> String {
    let online = workers.filter(\.online)
    guard !online.isEmpty else { return "no worker is online" }
    let usable = online.filter { !$0.drained }
    guard !usable.isEmpty else { return "every online worker is drained" }
    var busy: [String] = []
    var reasons: [(WorkerRecord, MismatchReason)] = []
    for worker in usable {
      // Ask whether it could ever fit: ignore what running jobs hold.
      switch Matching.place(requirements, on: worker.capacity.whenIdle) {
      case .success: busy.append(worker.advert.name)
      case .failure(let reason): reasons.append((worker, reason))
      }
    }
    if !busy.isEmpty {
      return "waiting for a free slot on \(busy.sorted().joined(separator: ", "))"
    }
    let need = "needs \(requirements.summary)"
    // Name the blocker that is not about GPUs first: a label or too little disk is
    // the real reason even on a machine whose card is also too small.
    func aboutGPUs(_ reason: MismatchReason) -> Bool {
      switch reason {
      case .tooLittleVRAM, .tooFewGPUs, .wrongVendor: true
      default: false
      }
    }
    let otherReason = reasons.first { !aboutGPUs($0.1) }
    if requirements.effectiveGPUCount > 0, otherReason == nil {
      let best = usable.flatMap { w in w.advert.gpus.map { (w.advert.name, $0) } }
        .filter { requirements.gpuVendor == nil || $0.1.vendor == requirements.gpuVendor }
        .max { $0.1.vramFree < $1.1.vramFree }
      if let best {
        return "\(need); best online: \(best.0), \(ByteSize(bytes: best.1.vramFree).decimalDescription)"
      }
      return "\(need); no online worker has a\(requirements.gpuVendor == nil ? "" : " matching") GPU"
    }
    if let (worker, reason) = otherReason {
      switch reason {
      case .tooLittleDisk(let free):
        let most =
          reasons.compactMap { pair -> (String, Int64)? in
            if case .tooLittleDisk(let f) = pair.1 { return (pair.0.advert.name, f) }
            return nil
          }.max { $0.1 < $1.1 } ?? (worker.advert.name, free)
        return "\(need); most disk free: \(most.0), \(ByteSize(bytes: most.1))"
      case .missingLabel(let label): return "\(need); no online worker has label \(label)"
      case .tooLittleMemory(let total):
        return "\(need); \(worker.advert.name) has \(ByteSize(bytes: total)) memory"
      default: break
      }
    }
    return need
  }
}
