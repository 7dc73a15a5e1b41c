import Foundation
import Shared

/// Reads the output of `rocm-smi --showproductname --showmeminfo vram --json`: an object
/// keyed `card0`, `card1`, … whose field names changed case between ROCm releases
/// (`Card series` / `Card Series`), so fields are matched case-insensitively. A card that
/// cannot be read becomes a warning and is skipped.
public enum ROCmSMIParser {
  public static func parse(json: String) -> GPUProbeResult {
    var warnings: [String] = []
    // rocm-smi prints warnings ("WARNING: AMD GPU device(s) is/are in a low-power state")
    // before the JSON on some releases.
    guard let start = json.firstIndex(of: "{") else {
      if json.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
        return GPUProbeResult(gpus: [], warnings: [])
      }
      return GPUProbeResult(gpus: [], warnings: ["rocm-smi output holds no JSON object: \(excerpt(json))"])
    }
    let object: [String: Any]
    do {
      let parsed = try JSONSerialization.jsonObject(with: Data(json[start...].utf8))
      guard let dictionary = parsed as? [String: Any] else {
        return GPUProbeResult(gpus: [], warnings: ["rocm-smi JSON is not an object: \(excerpt(json))"])
      }
      object = dictionary
    } catch {
      return GPUProbeResult(
        gpus: [],
        warnings: ["rocm-smi output is not valid JSON (\(error.localizedDescription)): \(excerpt(json))"])
    }

    var cards: [(Int, [String: Any])] = []
    for (key, value) in object {
      guard key.lowercased().hasPrefix("card") else { continue }  // "system" holds driver info
      guard let index = Int(key.dropFirst(4)), index >= 0 else {
        warnings.append("rocm-smi entry '\(key)' skipped: its name does not end in a card number")
        continue
      }
      guard let fields = value as? [String: Any] else {
        warnings.append("rocm-smi entry '\(key)' skipped: it is not an object")
        continue
      }
      cards.append((index, fields))
    }
    cards.sort { $0.0 < $1.0 }

    var driver: String? = nil
    if let system = object.first(where: { $0.key.lowercased() == "system" })?.value as? [String: Any] {
      driver = field(system, "Driver version")
    }

    var gpus: [GPU] = []
    for (index, fields) in cards {
      let model =
        field(fields, "Card Series") ?? field(fields, "Card Model") ?? field(fields, "Device Name")
        ?? field(fields, "Card SKU")
      guard let model else {
        warnings.append("rocm-smi card\(index) skipped: no product name (Card Series / Card Model)")
        continue
      }
      guard let totalText = field(fields, "VRAM Total Memory (B)") else {
        warnings.append("rocm-smi card\(index) skipped: no 'VRAM Total Memory (B)' field")
        continue
      }
      guard let total = Int64(totalText), total >= 0 else {
        warnings.append("rocm-smi card\(index) skipped: VRAM total '\(totalText)' is not a number of bytes")
        continue
      }
      var free = total
      if let usedText = field(fields, "VRAM Total Used Memory (B)") {
        if let used = Int64(usedText), used >= 0 {
          free = max(0, total - used)
        } else {
          warnings.append("rocm-smi card\(index): VRAM used '\(usedText)' is not a number; assuming all free")
        }
      }
      gpus.append(
        GPU(
          index: index, vendor: .amd, model: model, uuid: field(fields, "Unique ID"), vramTotal: total,
          vramFree: free, computeCapability: field(fields, "GFX Version"), driver: driver))
    }
    return GPUProbeResult(gpus: gpus, warnings: warnings)
  }

  private static func field(_ fields: [String: Any], _ name: String) -> String? {
    let wanted = name.lowercased()
    guard let value = fields.first(where: { $0.key.lowercased() == wanted })?.value else { return nil }
    let text: String
    switch value {
    case let string as String: text = string
    case let number as NSNumber: text = number.stringValue
    default: return nil
    }
    let trimmed = text.trimmingCharacters(in: .whitespaces)
    return trimmed.isEmpty || trimmed == "N/A" ? nil : trimmed
  }

  static func excerpt(_ text: String) -> String {
    let flat = text.replacingOccurrences(of: "\n", with: " ").trimmingCharacters(in: .whitespaces)
    return flat.count > 200 ? String(flat.prefix(200)) + "…" : flat
  }
}
