import ArgumentParser
import Foundation

@main
struct Pinpool: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "pinpool",
    abstract: "Run Pinokio-style scripts on a shared pool of GPU machines.",
    discussion: reflow(
      """
      A coordinator queues jobs and hands each to a worker whose GPUs, VRAM and disk fit.
      Start one with `pinpool dev` to try it on this machine, then `pinpool submit SCRIPT --follow`.

      Every client command takes --coordinator ENDPOINT (or PINPOOL_COORDINATOR; default
      tcp://127.0.0.1:7450) and --json, whose shapes are fixed (see DESIGN.md). Human output
      is a table or a short block, coloured only on a terminal (NO_COLOR turns colour off).

      Shell completions, with job ids and worker names from the pool:
      `pinpool --generate-completion-script bash|zsh|fish` (see README).
      """)
        + """


        EXAMPLES
          pinpool dev
          pinpool submit render.json --gpus 1 --vram 60GB --follow
          pinpool jobs --state running
          pinpool status 42
          pinpool logs 42 --follow
          pinpool workers
          pinpool --generate-completion-script zsh > ~/.zfunc/_pinpool

        \(ExitStatus.summary)
        """,
    subcommands: [
      DevCommand.self, CoordinatorCommand.self, WorkerCommand.self, SubmitCommand.self, StatusCommand.self,
      JobsCommand.self, LogsCommand.self, CancelCommand.self, WorkersCommand.self, DrainCommand.self,
      UndrainCommand.self, ValidateCommand.self, KeysCommand.self, ArtifactsCommand.self,
    ])

  /// ArgumentParser's own main, with the exit statuses of `ExitStatus`: help and
  /// completion scripts on stdout with 0, every error as one message on stderr.
  static func main() async {
    do {
      var command = try await asyncParseAsRoot()
      if var asyncCommand = command as? AsyncParsableCommand {
        try await asyncCommand.run()
      } else {
        try command.run()
      }
    } catch {
      let status = ExitStatus.of(error)
      let text = fullMessage(for: error)
      if status == 0 {
        if !text.isEmpty { print(text) }
      } else if !text.isEmpty {
        printError(text)
      }
      fflush(nil)
      Foundation.exit(status)
    }
  }
}
