const virtine = @import("virtine");

pub fn main() u64 {
    virtine.print("hello from a virtine\n", .{});
    return 0;
}
