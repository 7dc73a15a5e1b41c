import Foundation
import Shared

/// Reads the output of
/// `nvidia-smi --query-gpu=index,uuid,name,memory.total,memory.free,driver_version,compute_cap
///  --format=csv,noheader,nounits`.
///
/// A line that cannot be read becomes a warning and is skipped: one odd GPU (or a driver
/// message mixed into the output) must not hide the others from the scheduler.
///
/// MIG: a line whose uuid starts with `MIG-` is a MIG instance and its index may be
/// written `GPU:INSTANCE` (`0:1`). A physical GPU that has instances listed is replaced by
/// them, because in MIG mode the whole GPU cannot be handed to a job; instances are
/// numbered after the physical GPUs and a job must be pointed at them by uuid
/// (`JobEnvironment.make(visibleDevices:)`). When MIG mode hides `memory.free` (`[N/A]`)
/// the GPU is reported as entirely free, with a warning, rather than as full, which would
/// make it unschedulable.
public enum NvidiaSMIParser {
  static let mebibyte: Int64 = 1024 * 1024

  public static func parse(csv: String) -> GPUProbeResult {
    var warnings: [String] = []
    var physical: [GPU] = []
    var instances: [(parent: Int?, gpu: GPU)] = []

    for (offset, rawLine) in csv.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline)
      .enumerated()
    {
      let line = rawLine.trimmingCharacters(in: .whitespaces)
      if line.isEmpty { continue }
      let lineNumber = offset + 1
      func warn(_ reason: String) {
        warnings.append("nvidia-smi line \(lineNumber) '\(line)' skipped: \(reason)")
      }

      var fields = line.split(separator: ",", omittingEmptySubsequences: false).map {
        $0.trimmingCharacters(in: .whitespaces)
      }
      if fields.count < 7 {
        warn("expected 7 comma-separated fields, found \(fields.count)")
        continue
      }
      // A model name containing commas spreads over several fields; the others never do.
      if fields.count > 7 {
        let name = fields[2..<(fields.count - 4)].joined(separator: ", ")
        fields = [fields[0], fields[1], name] + fields[(fields.count - 4)...]
      }
      let (indexText, uuidText, name, totalText, freeText, driverText, capText) = (
        fields[0], fields[1], fields[2], fields[3], fields[4], fields[5], fields[6]
      )
      let uuid = notAvailable(uuidText) ? nil : uuidText
      let isMIG = uuid?.hasPrefix("MIG-") ?? false

      var parentIndex: Int? = nil
      if isMIG {
        parentIndex = Int(indexText.split(separator: ":").first.map(String.init) ?? "")
      } else if let index = Int(indexText), index >= 0 {
        parentIndex = index
      } else {
        warn("the index '\(indexText)' is not a number")
        continue
      }
      if name.isEmpty || notAvailable(name) {
        warn("the GPU name is missing")
        continue
      }
      guard let totalMiB = Int64(totalText), totalMiB >= 0 else {
        warn("memory.total '\(totalText)' is not a number of MiB")
        continue
      }
      var freeMiB: Int64
      if notAvailable(freeText) {
        freeMiB = totalMiB
        warnings.append(
          "nvidia-smi reports no free memory for GPU \(indexText) (\(name)) — usual in MIG mode;"
            + " assuming all \(totalMiB) MiB are free")
      } else if let value = Int64(freeText), value >= 0 {
        freeMiB = min(value, totalMiB)
      } else {
        warn("memory.free '\(freeText)' is not a number of MiB")
        continue
      }
      if freeMiB < 0 { freeMiB = 0 }
      let gpu = GPU(
        index: parentIndex ?? 0, vendor: .nvidia, model: name, uuid: uuid,
        vramTotal: totalMiB * mebibyte, vramFree: freeMiB * mebibyte,
        computeCapability: notAvailable(capText) ? nil : capText,
        driver: notAvailable(driverText) ? nil : driverText)
      if isMIG {
        instances.append((parentIndex, gpu))
      } else {
        physical.append(gpu)
      }
    }

    let partitioned = Set(instances.compactMap(\.parent))
    var gpus = physical.filter { !partitioned.contains($0.index) }
    var next = (gpus.map(\.index).max() ?? -1) + 1
    for var instance in instances.map(\.gpu) {
      instance.index = next
      next += 1
      gpus.append(instance)
    }
    return GPUProbeResult(gpus: gpus, warnings: warnings)
  }

  /// nvidia-smi writes `[N/A]`, `N/A` or `[Not Supported]` for fields a driver or mode
  /// does not provide.
  static func notAvailable(_ field: String) -> Bool {
    field.isEmpty || field == "N/A" || field == "[N/A]" || field.hasPrefix("[Not Supported")
      || field == "[Insufficient Permissions]"
  }
}
