import ArgumentParser
import Foundation
import Shared

struct KeysCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "keys",
    abstract: "Make and enrol CurveZMQ keys, so only enrolled machines and people get in.",
    discussion: manual(
      """
      The coordinator's keys folder holds its own pair (coordinator.key, coordinator.key_secret)
      and the public keys it admits, one folder per role: workers/NAME.key, clients/NAME.key,
      admins/NAME.key. A worker's or person's keys folder holds their own pair and a copy of the
      coordinator's coordinator.key. Files follow czmq's certificate format, so czmq tools read
      them too.
      """,
      examples: [
        "pinpool keys generate --out /etc/pinpool/keys --name coordinator      # on the coordinator",
        "pinpool keys generate --out /etc/pinpool/worker-keys --name edge-3    # on a worker",
        "cp coordinator.key /etc/pinpool/worker-keys/                          # the coordinator's public key",
        "pinpool keys enroll edge-3.key --keys /etc/pinpool/keys --role worker # back on the coordinator",
      ], exit: [.success, .failure, .usage]),
    subcommands: [GenerateKeysCommand.self, EnrollKeyCommand.self])
}

struct GenerateKeysCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "generate", abstract: "Make a key pair: NAME.key (public) and NAME.key_secret (mode 0600).",
    discussion: manual(
      "Never overwrites a key. The secret file is created with mode 0600.",
      examples: [
        "pinpool keys generate --out /etc/pinpool/keys --name coordinator",
        "pinpool keys generate --out ~/.config/pinpool/keys --name alice",
      ], exit: [.success, .failure, .usage]))

  @Option(help: ArgumentHelp("Folder to write the two files into (made if missing).", valueName: "dir"))
  var out: String
  @Option(help: "The key's name: the file names, and the name the pool knows it by (default: the host name).")
  var name: String?

  func run() throws {
    let keyName =
      name ?? ProcessInfo.processInfo.hostName.split(separator: ".").first.map(String.init) ?? "pinpool"
    guard !keyName.isEmpty, keyName.allSatisfy({ $0.isLetter || $0.isNumber || "-_.".contains($0) }),
      !keyName.hasPrefix(".")
    else {
      throw CLIError.usage(
        "--name '\(keyName)': use letters, digits, '-', '_' and '.', not starting with '.'")
    }
    do {
      let pair = try CurveKeyPair.generate(name: keyName)
      try CertificateFile.write(pair, to: out)
      let base = (out as NSString).appendingPathComponent(keyName)
      print("wrote \(base).key (public: share it) and \(base).key_secret (secret: keep it here)")
      print("public key: \(pair.publicKey)")
    } catch {
      throw CLIError(error.description)
    }
  }
}

struct EnrollKeyCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "enroll", abstract: "Admit a public key to a coordinator's keys folder with a role.",
    discussion: manual(
      """
      Copies the checked key to KEYS/workers/, clients/ or admins/ as NAME.key. A running
      coordinator picks it up at the next handshake; delete the file to revoke (a connection
      already admitted with it has its messages refused within a second).
      """,
      examples: [
        "pinpool keys enroll edge-3.key --keys /etc/pinpool/keys --role worker",
        "pinpool keys enroll alice.key --keys /etc/pinpool/keys --role client",
        "pinpool keys enroll bob.key --keys /etc/pinpool/keys --role admin --name bob",
      ], exit: [.success, .failure, .usage]))

  @Argument(help: "The public key file (NAME.key).") var keyFile: String
  @Option(help: ArgumentHelp("The coordinator's keys folder.", valueName: "dir")) var keys: String
  @Option(help: "worker, client or admin.") var role: String
  @Option(help: "The name to enrol it under (default: the file's name).") var name: String?

  func run() throws {
    guard let role = Role(rawValue: role) else {
      throw CLIError.usage("--role '\(role)': expected worker, client or admin")
    }
    if keyFile.hasSuffix(CertificateFile.secretSuffix) {
      throw CLIError(
        "\(keyFile) is a secret key; enrol the public one (\(CertificateFile.stem(keyFile)).key)")
    }
    do {
      let (_, key) = try CertificateFile.readPublic(keyFile)
      let existing = try? ServerKeys.loadEnrolled(keys)
      if let holder = existing?[key.z85] {
        throw CLIError("this key is already enrolled as \(holder)")
      }
      let keyName = name ?? CertificateFile.stem(keyFile)
      let folder = (keys as NSString).appendingPathComponent(role.folder)
      try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
      let target = (folder as NSString).appendingPathComponent(keyName + CertificateFile.publicSuffix)
      guard !FileManager.default.fileExists(atPath: target) else {
        throw CLIError("\(target) exists; choose another --name or remove it first")
      }
      try FileManager.default.copyItem(atPath: keyFile, toPath: target)
      print("enrolled \(key) as \(role.rawValue) \(keyName) (\(target))")
    } catch let error as CLIError {
      throw error
    } catch {
      throw CLIError("\(error)")
    }
  }
}
