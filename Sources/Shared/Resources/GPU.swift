/// One GPU as a worker advertises it. `index` is the worker's own 0-based numbering,
/// the one `CUDA_VISIBLE_DEVICES` uses on that machine.
public struct GPU: Sendable, Hashable, Codable {
  public var index: Int
  public var vendor: GPUVendor
  public var model: String
  public var uuid: String?
  public var vramTotal: Int64
  public var vramFree: Int64
  public var computeCapability: String?
  public var driver: String?

  public init(
    index: Int, vendor: GPUVendor, model: String, uuid: String? = nil, vramTotal: Int64,
    vramFree: Int64, computeCapability: String? = nil, driver: String? = nil
  ) {
    self.index = index
    self.vendor = vendor
    self.model = model
    self.uuid = uuid
    self.vramTotal = vramTotal
    self.vramFree = vramFree
    self.computeCapability = computeCapability
    self.driver = driver
  }
}

/// Vendor names as Pinokio's `gpu` variable spells them.
public enum GPUVendor: String, Sendable, Hashable, Codable, CaseIterable {
  case nvidia, amd, apple, intel

  public init(parsing text: String) throws(GPUDeclarationError) {
    guard let vendor = GPUVendor(rawValue: text.lowercased()) else {
      throw GPUDeclarationError(
        text: text, reason: "unknown vendor '\(text)'; expected one of nvidia, amd, apple, intel")
    }
    self = vendor
  }
}

public struct GPUDeclarationError: Error, CustomStringConvertible, Sendable {
  public let text: String
  public let reason: String
  public var description: String { "invalid GPU declaration '\(text)': \(reason)" }
}

extension GPU {
  /// Parses `vendor:model:vram` (`nvidia:NVIDIA GeForce RTX 4090:24GiB`); the model may
  /// itself contain colons, so vendor is the first field and VRAM the last.
  public init(declaration text: String, index: Int) throws(GPUDeclarationError) {
    let parts = text.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
    guard parts.count >= 3 else {
      throw GPUDeclarationError(text: text, reason: "expected vendor:model:vram")
    }
    let vendor: GPUVendor
    do {
      vendor = try GPUVendor(parsing: parts[0])
    } catch {
      // Name the whole declaration the operator wrote, not just its first field.
      throw GPUDeclarationError(text: text, reason: error.reason)
    }
    let model = parts[1..<(parts.count - 1)].joined(separator: ":")
    guard !model.isEmpty else { throw GPUDeclarationError(text: text, reason: "the model is empty") }
    let vram: ByteSize
    do {
      vram = try ByteSize(parsing: parts[parts.count - 1])
    } catch {
      throw GPUDeclarationError(text: text, reason: error.description)
    }
    self.init(index: index, vendor: vendor, model: model, vramTotal: vram.bytes, vramFree: vram.bytes)
  }
}
