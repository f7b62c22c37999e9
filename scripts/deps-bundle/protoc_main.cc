// protoc for the dependency bundle: the compiler of the bundle's Protobuf
// with its C++ generator (all that Convoy generates), linked statically so it
// runs on any x86-64 Linux whatever its C library.
#include <google/protobuf/compiler/command_line_interface.h>
#include <google/protobuf/compiler/cpp/generator.h>

int main(int argc, char* argv[]) {
  google::protobuf::compiler::CommandLineInterface cli;
  cli.AllowPlugins("protoc-");
  google::protobuf::compiler::cpp::CppGenerator cpp;
  cli.RegisterGenerator("--cpp_out", "--cpp_opt", &cpp, "Generate C++ header and source.");
  return cli.Run(argc, argv);
}
