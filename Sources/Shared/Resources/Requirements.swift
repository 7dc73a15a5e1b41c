/// What a job needs from a worker. Built from the script's `resources` block, then
/// overridden field by field by CLI flags.
public struct Requirements: Sendable, Hashable, Codable {
  public var gpus: Int = 0
  public var gpuVendor: GPUVendor?
  /// Minimum free VRAM per GPU, in bytes.
  public var vram: Int64?
  public var disk: Int64?
  public var memory: Int64?
  public var labels: [String: String] = [:]
  /// A substring of the GPU model, case-insensitive (`4090`, `A100`, `H100 80GB`).
  public var gpuModel: String?
  /// Minimum CUDA compute capability, as `nvidia-smi` prints it (`8.0`, `8.9`).
  public var computeCapability: String?
  /// Node's platform name (`linux`, `darwin`, `win32`).
  public var platform: String?

  public init(
    gpus: Int = 0, gpuVendor: GPUVendor? = nil, vram: Int64? = nil, disk: Int64? = nil,
    memory: Int64? = nil, labels: [String: String] = [:], gpuModel: String? = nil,
    computeCapability: String? = nil, platform: String? = nil
  ) {
    self.gpuModel = gpuModel
    self.computeCapability = computeCapability
    self.platform = platform
    self.gpus = gpus
    self.gpuVendor = gpuVendor
    self.vram = vram
    self.disk = disk
    self.memory = memory
    self.labels = labels
  }

  /// Asking for VRAM implies asking for a GPU: `--vram 16GB` alone means one GPU with
  /// 16 GB, the way people say it.
  public var effectiveGPUCount: Int {
    gpus == 0 && (vram != nil || gpuVendor != nil || gpuModel != nil || computeCapability != nil) ? 1 : gpus
  }

  /// `8.9` as (8, 9), so `10.0` compares above `9.0`.
  public static func parseCapability(_ text: String) -> (Int, Int)? {
    let parts = text.split(separator: ".")
    guard (1...2).contains(parts.count), let major = Int(parts[0]) else { return nil }
    let minor = parts.count == 2 ? Int(parts[1]) : 0
    guard let minor else { return nil }
    return (major, minor)
  }

  public init(resources: JSONValue?) throws(RequirementsError) {
    guard let resources, case .object(let object) = resources else {
      if let resources, !resources.isNull {
        throw RequirementsError(field: "resources", reason: "expected an object, got \(resources.typeName)")
      }
      return
    }
    for (key, value) in object {
      switch key {
      case "gpus":
        guard let n = value.numberValue, n >= 0, n == n.rounded(), n < 1024 else {
          throw RequirementsError(field: "resources.gpus", reason: "expected a whole number ≥ 0")
        }
        gpus = Int(n)
      case "gpu":
        guard let text = value.stringValue else {
          throw RequirementsError(field: "resources.gpu", reason: "expected a vendor name")
        }
        do { gpuVendor = try GPUVendor(parsing: text) } catch {
          throw RequirementsError(field: "resources.gpu", reason: error.reason)
        }
      case "vram", "disk", "memory":
        let size: Int64
        if let n = value.numberValue {
          size = Int64(n)
        } else if let text = value.stringValue {
          do { size = try ByteSize(parsing: text).bytes } catch {
            throw RequirementsError(field: "resources.\(key)", reason: error.description)
          }
        } else {
          throw RequirementsError(field: "resources.\(key)", reason: "expected a size such as \"24GB\"")
        }
        if key == "vram" { vram = size } else if key == "disk" { disk = size } else { memory = size }
      case "gpu_model", "gpuModel":
        guard let text = value.stringValue, !text.isEmpty else {
          throw RequirementsError(field: "resources.\(key)", reason: "expected part of a GPU model name")
        }
        gpuModel = text
      case "compute_capability", "computeCapability":
        let text = value.stringValue ?? value.numberValue.map { JSONValue.format(number: $0) }
        guard let text, Requirements.parseCapability(text) != nil else {
          throw RequirementsError(
            field: "resources.\(key)", reason: "expected a compute capability such as \"8.0\"")
        }
        computeCapability = text
      case "platform":
        guard let text = value.stringValue, !text.isEmpty else {
          throw RequirementsError(field: "resources.platform", reason: "expected linux, darwin or win32")
        }
        platform = text
      case "labels":
        guard case .object(let labelObject) = value else {
          throw RequirementsError(field: "resources.labels", reason: "expected an object of strings")
        }
        for (k, v) in labelObject {
          guard let s = v.stringValue else {
            throw RequirementsError(field: "resources.labels.\(k)", reason: "expected a string")
          }
          labels[k] = s
        }
      default:
        // Unknown keys are left for newer workers; validate warns about them.
        continue
      }
    }
  }

  /// One line a person reads in `status`: "1 GPU with ≥ 80 GB free, 10 GB disk".
  public var summary: String {
    var parts: [String] = []
    let count = effectiveGPUCount
    if count > 0 {
      var gpu = "\(count) \(gpuVendor.map { "\($0.rawValue) " } ?? "")GPU\(count == 1 ? "" : "s")"
      if let gpuModel { gpu += " matching '\(gpuModel)'" }
      if let computeCapability { gpu += " (compute ≥ \(computeCapability))" }
      if let vram { gpu += " with ≥ \(ByteSize(bytes: vram).decimalDescription) free" }
      parts.append(gpu)
    }
    if let disk { parts.append("\(ByteSize(bytes: disk)) disk") }
    if let memory { parts.append("\(ByteSize(bytes: memory)) memory") }
    if let platform { parts.append("platform \(platform)") }
    for (k, v) in labels.sorted(by: { $0.key < $1.key }) { parts.append("label \(k)=\(v)") }
    return parts.isEmpty ? "a free slot" : parts.joined(separator: ", ")
  }
}

public struct RequirementsError: Error, CustomStringConvertible, Sendable {
  public let field: String
  public let reason: String
  public var description: String { "\(field): \(reason)" }
}
