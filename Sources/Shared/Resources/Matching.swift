import Foundation

/// What the scheduler knows of a worker's capacity at one moment: its advertised
/// resources minus what the jobs it holds have reserved.
public struct WorkerCapacity: Sendable, Hashable {
  public var gpus: [GPU]
  public var reservedGPUIndices: Set<Int>
  public var freeSlots: Int
  public var diskFree: Int64
  /// Disk the held jobs reserved (already taken off `diskFree`): free again once they
  /// end, which is what an aged job waiting for the worker to drain can count on.
  public var reservedDisk: Int64 = 0
  public var memoryTotal: Int64
  public var labels: [String: String]
  public var platform: String = "linux"

  public init(
    gpus: [GPU], reservedGPUIndices: Set<Int>, freeSlots: Int, diskFree: Int64, memoryTotal: Int64,
    labels: [String: String], platform: String = "linux", reservedDisk: Int64 = 0
  ) {
    self.platform = platform
    self.reservedDisk = reservedDisk
    self.gpus = gpus
    self.reservedGPUIndices = reservedGPUIndices
    self.freeSlots = freeSlots
    self.diskFree = diskFree
    self.memoryTotal = memoryTotal
    self.labels = labels
  }

  /// The worker once every job it holds has ended: all slots, GPUs and reserved disk
  /// free (what it holds now was taken from them).
  public var whenIdle: WorkerCapacity {
    var idle = self
    idle.reservedGPUIndices = []
    idle.freeSlots = max(1, freeSlots)
    idle.diskFree += reservedDisk
    idle.reservedDisk = 0
    return idle
  }
}

/// Why a worker cannot take a job now; `static` reasons (the machine can never fit)
/// are told apart from `busy` ones (it will fit once jobs finish).
public enum MismatchReason: Error, Sendable, Hashable {
  case noFreeSlot
  case gpusBusy
  case tooFewGPUs(have: Int)
  case tooLittleVRAM(best: Int64)
  case wrongVendor
  case wrongPlatform(String)
  case tooLittleDisk(free: Int64)
  case tooLittleMemory(total: Int64)
  case missingLabel(String)

  public var isBusy: Bool {
    switch self {
    case .noFreeSlot, .gpusBusy: true
    default: false
    }
  }
}

/// A placement: which of the worker's GPUs (its own indices) the job gets.
public struct Placement: Sendable, Hashable {
  public var gpuIndices: [Int]
  /// Free VRAM left over on the chosen GPUs; smaller is a tighter fit.
  public var vramSlack: Int64
}

public enum Matching {
  /// Decides whether `requirements` fit `capacity` now, and on which GPUs. Pure, so the
  /// scheduler core and its tests share exactly one definition of "fits".
  public static func place(_ requirements: Requirements, on capacity: WorkerCapacity) -> Result<
    Placement, MismatchReason
  > {
    for (key, value) in requirements.labels where capacity.labels[key] != value {
      return .failure(.missingLabel("\(key)=\(value)"))
    }
    if let platform = requirements.platform, platform != capacity.platform {
      return .failure(.wrongPlatform(capacity.platform))
    }
    if let memory = requirements.memory, memory > capacity.memoryTotal {
      return .failure(.tooLittleMemory(total: capacity.memoryTotal))
    }
    let count = requirements.effectiveGPUCount
    var chosen: [GPU] = []
    if count > 0 {
      let minimumCapability = requirements.computeCapability.flatMap(Requirements.parseCapability)
      let vendorOK = capacity.gpus.filter { g in
        guard requirements.gpuVendor.map({ $0 == g.vendor }) ?? true else { return false }
        if let model = requirements.gpuModel, g.model.range(of: model, options: .caseInsensitive) == nil {
          return false
        }
        if let minimum = minimumCapability {
          guard let have = g.computeCapability.flatMap(Requirements.parseCapability), have >= minimum else {
            return false
          }
        }
        return true
      }
      if vendorOK.isEmpty, !capacity.gpus.isEmpty { return .failure(.wrongVendor) }
      if vendorOK.count < count { return .failure(.tooFewGPUs(have: vendorOK.count)) }
      let minVRAM = requirements.vram ?? 0
      let bigEnough = vendorOK.filter { $0.vramFree >= minVRAM }
      if bigEnough.count < count {
        return .failure(.tooLittleVRAM(best: vendorOK.map(\.vramFree).max() ?? 0))
      }
      let available = bigEnough.filter { !capacity.reservedGPUIndices.contains($0.index) }
      if available.count < count { return .failure(.gpusBusy) }
      // Best fit: the smallest cards that are big enough, so a 24 GB job does not
      // take the 80 GB card an 80 GB job is waiting for.
      chosen = Array(available.sorted { ($0.vramFree, $0.index) < ($1.vramFree, $1.index) }.prefix(count))
    }
    if let disk = requirements.disk, disk > capacity.diskFree {
      return .failure(.tooLittleDisk(free: capacity.diskFree))
    }
    if capacity.freeSlots <= 0 { return .failure(.noFreeSlot) }
    let slack = chosen.reduce(Int64(0)) { $0 + ($1.vramFree - (requirements.vram ?? 0)) }
    return .success(Placement(gpuIndices: chosen.map(\.index).sorted(), vramSlack: slack))
  }
}
