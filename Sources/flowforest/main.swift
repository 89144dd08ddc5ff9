print("flowforest")
