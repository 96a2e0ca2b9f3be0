fn main() {
    eprintln!("reflector: the server binary is wired up by the live reflector issue");
}
